// Regression tests for what tests/fuzz/model_config_fuzzer found. Each reproducer (in
// tests/fuzz/regressions/model_config_fuzzer/, read through MLA_SOURCE_DIR) is a config.json
// that ParseModelConfig accepted although its derived sizes cannot be computed: products that
// overflow int64 (undefined behavior in ModelConfig::AttentionParamsPerLayer / TotalParams) or a
// layer count that makes TotalParams loop for seconds. Each must be rejected with a clean
// InvalidArgument instead. ParseModelConfig alone is called, so a failure here is an ordinary
// test failure, never a crash.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "worker/model_config.h"

namespace mla {
namespace {

std::string ReadRegression(const std::string& name) {
  const char* root = std::getenv("MLA_SOURCE_DIR");
  const std::string path = std::string(root != nullptr ? root : ".") +
                           "/tests/fuzz/regressions/model_config_fuzzer/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// vocab_size 2^62: vocab_size * hidden_size overflows in TotalParams.
TEST(ModelConfigFuzzRegressions, VocabSizeWhoseEmbeddingOverflowsIsRejected) {
  const absl::StatusOr<ModelConfig> config =
      ParseModelConfig(ReadRegression("total_params_overflow.json"));
  EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << config.status();
}

// q_lora_rank 2^62: hidden_size * q_lora_rank overflows in AttentionParamsPerLayer.
TEST(ModelConfigFuzzRegressions, RankWhoseProjectionOverflowsIsRejected) {
  const absl::StatusOr<ModelConfig> config =
      ParseModelConfig(ReadRegression("attention_params_overflow.json"));
  EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << config.status();
}

// num_hidden_layers 993187651: TotalParams runs one LayerParams per layer (> 10 s under ASan).
TEST(ModelConfigFuzzRegressions, AbsurdLayerCountIsRejected) {
  const absl::StatusOr<ModelConfig> config =
      ParseModelConfig(ReadRegression("layer_count_timeout.json"));
  EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << config.status();
}

}  // namespace
}  // namespace mla
