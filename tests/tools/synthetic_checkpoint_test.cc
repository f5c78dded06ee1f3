// Tests the synthetic checkpoint maker: the tiny preset opens with Checkpoint::Open with every
// expected tensor, bytes are a function of the seed only (not of the sharding), value scales are
// as documented, and the v3 preset's tensor inventory matches DeepSeek-V3 (shapes only).
#include "tools/synthetic_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/bf16.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint.h"

namespace mla::tools {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("synthetic_checkpoint_test_" + name);
  fs::remove_all(dir);
  return dir.string();
}

std::string ReadAll(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every file of the directory, by name.
std::map<std::string, std::string> Files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    files[e.path().filename().string()] = ReadAll(e.path());
  }
  return files;
}

SyntheticOptions Tiny(uint64_t seed, double shard_gib) {
  SyntheticOptions o;
  o.preset = "tiny";
  o.seed = seed;
  o.shard_gib = shard_gib;
  return o;
}

ModelConfig ConfigOf(const SyntheticOptions& options) {
  absl::StatusOr<std::string> text = SyntheticConfigJson(options);
  EXPECT_TRUE(text.ok()) << text.status();
  absl::StatusOr<ModelConfig> config = ParseModelConfig(text.value_or("{}"));
  EXPECT_TRUE(config.ok()) << config.status();
  return config.value_or(ModelConfig{});
}

TEST(SyntheticCheckpoint, TinyOpensWithEveryTensor) {
  const std::string dir = FreshDir("tiny");
  const double shard_gib = 2.0 / 1024;  // 2 MiB: several shards
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(1, shard_gib), dir).ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelConfig& config = (*ckpt)->config();
  EXPECT_EQ(config.hidden_size, 256);
  EXPECT_EQ(config.n_routed_experts, 8);
  const std::vector<SyntheticTensor> tensors = SyntheticTensors(config);
  int64_t total = 0;
  for (const SyntheticTensor& t : tensors) {
    absl::StatusOr<TensorView> view = (*ckpt)->Get(t.spec.name);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->shape, t.spec.shape) << t.spec.name;
    EXPECT_EQ(view->dtype, t.spec.dtype) << t.spec.name;
    total += t.spec.nbytes();
  }
  // 1 embed + 4 layers * 9 attention/norm tensors + 3 dense + 3 * (2 router + 9 * 3) + norm + head
  EXPECT_EQ(tensors.size(), 1 + 4 * 9 + 3 + 3 * 29 + 2);
  EXPECT_TRUE((*ckpt)->Has("model.layers.1.mlp.gate.e_score_correction_bias"));
  EXPECT_FALSE((*ckpt)->Has("model.layers.0.mlp.gate.weight"));

  const int num_shards = AssignShards(tensors, 2 << 20).back() + 1;
  EXPECT_GT(num_shards, 2);
  auto index = nlohmann::json::parse(ReadAll(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  std::set<std::string> shard_files;
  for (const auto& [name, file] : index["weight_map"].items()) shard_files.insert(file);
  EXPECT_EQ(static_cast<int>(shard_files.size()), num_shards);
  EXPECT_TRUE(shard_files.count(absl::StrFormat("model-00001-of-%05d.safetensors", num_shards)));
}

TEST(SyntheticCheckpoint, BytesDependOnSeedOnly) {
  const std::string a = FreshDir("seed_a"), b = FreshDir("seed_b"), c = FreshDir("seed_c");
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(7, 1.0 / 1024), a).ok());
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(7, 1.0 / 1024), b).ok());
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(8, 1.0 / 1024), c).ok());
  const auto fa = Files(a), fb = Files(b), fc = Files(c);
  EXPECT_EQ(fa, fb);
  ASSERT_EQ(fa.size(), fc.size());
  for (const auto& [name, bytes] : fa) {
    if (name.rfind("model-", 0) == 0) {
      EXPECT_NE(bytes, fc.at(name)) << name;
    }
  }
  EXPECT_EQ(fa.at("config.json"), fc.at("config.json"));
}

TEST(SyntheticCheckpoint, ValuesDoNotDependOnSharding) {
  const std::string one = FreshDir("one_shard"), many = FreshDir("many_shards");
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(3, 1.0), one).ok());
  ASSERT_TRUE(WriteSyntheticCheckpoint(Tiny(3, 0.5 / 1024), many).ok());
  EXPECT_TRUE(fs::exists(fs::path(one) / "model-00001-of-00001.safetensors"));
  auto c1 = Checkpoint::Open(one);
  auto c2 = Checkpoint::Open(many);
  ASSERT_TRUE(c1.ok() && c2.ok());
  for (const SyntheticTensor& t : SyntheticTensors((*c1)->config())) {
    auto v1 = (*c1)->Get(t.spec.name);
    auto v2 = (*c2)->Get(t.spec.name);
    ASSERT_TRUE(v1.ok() && v2.ok()) << t.spec.name;
    ASSERT_EQ(v1->nbytes, v2->nbytes);
    EXPECT_EQ(std::memcmp(v1->data, v2->data, v1->nbytes), 0) << t.spec.name;
  }
}

// Mean and standard deviation of a tensor's values, generated in odd-sized chunks.
std::pair<double, double> Moments(const SyntheticTensor& t, uint64_t seed, float* lo, float* hi) {
  const int64_t n = t.spec.nbytes() / DTypeSize(t.spec.dtype);
  std::vector<bf16> whole(n), chunk(n);
  FillSynthetic(t, seed, 0, n, whole.data());
  for (int64_t b = 0; b < n; b += 997) FillSynthetic(t, seed, b, std::min<int64_t>(997, n - b),
                                                     chunk.data() + b);
  EXPECT_EQ(std::memcmp(whole.data(), chunk.data(), n * sizeof(bf16)), 0) << t.spec.name;
  double sum = 0, sq = 0;
  *lo = INFINITY;
  *hi = -INFINITY;
  for (bf16 v : whole) {
    const float f = Bf16ToFloat(v);
    sum += f;
    sq += double{f} * f;
    *lo = std::min(*lo, f);
    *hi = std::max(*hi, f);
  }
  const double mean = sum / n;
  return {mean, std::sqrt(sq / n - mean * mean)};
}

TEST(SyntheticCheckpoint, ValueScales) {
  const ModelConfig config = ConfigOf(Tiny(0, 1.0));
  std::map<std::string, SyntheticTensor> by_name;
  for (const SyntheticTensor& t : SyntheticTensors(config)) by_name[t.spec.name] = t;
  float lo, hi;
  auto [mean, sd] = Moments(by_name.at("model.embed_tokens.weight"), 5, &lo, &hi);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sd, 1.0, 0.01);
  std::tie(mean, sd) = Moments(by_name.at("model.layers.0.self_attn.q_a_proj.weight"), 5, &lo, &hi);
  EXPECT_NEAR(sd, 1.0 / 16.0, 0.002);  // fan_in 256
  std::tie(mean, sd) = Moments(by_name.at("model.layers.2.self_attn.o_proj.weight"), 5, &lo, &hi);
  EXPECT_NEAR(sd, 1.0 / 16.0 / std::sqrt(8.0), 0.001);  // fan_in 8*32, 2*num_layers = 8
  std::tie(mean, sd) = Moments(by_name.at("model.layers.3.mlp.experts.5.down_proj.weight"), 5,
                               &lo, &hi);
  EXPECT_NEAR(sd, 1.0 / 8.0 / std::sqrt(8.0), 0.002);  // fan_in 64
  std::tie(mean, sd) = Moments(by_name.at("model.norm.weight"), 5, &lo, &hi);
  EXPECT_NEAR(mean, 1.0, 0.01);
  EXPECT_GE(lo, 0.95f - 1.0f / 256);  // plus bf16 rounding
  EXPECT_LE(hi, 1.05f + 1.0f / 128);
  EXPECT_GT(sd, 0.01);

  const SyntheticTensor& bias = by_name.at("model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(bias.spec.dtype, DType::kF32);
  std::vector<float> b(8);
  FillSynthetic(bias, 5, 0, 8, b.data());
  for (float v : b) EXPECT_LE(std::abs(v), 0.1f);
  EXPECT_NE(b[0], b[1]);
}

TEST(SyntheticCheckpoint, V3InventoryMatchesDeepSeekV3) {
  const ModelConfig full = ConfigOf(SyntheticOptions{.preset = "v3", .n_routed_experts = 256});
  EXPECT_EQ(full.num_experts_per_tok, 8);
  EXPECT_EQ(full.topk_group, 4);
  int64_t params = 0;
  std::vector<SyntheticTensor> tensors = SyntheticTensors(full);
  for (const SyntheticTensor& t : tensors) params += t.spec.nbytes() / DTypeSize(t.spec.dtype);
  EXPECT_EQ(params, 671026419200);  // MODEL.md §8.1
  EXPECT_EQ(params, full.TotalParams());
  // Main-model tensor count of the released checkpoint's layout, without FP8 scales and MTP:
  // embed, norm, head + 61 * 9 + 3 * 3 dense + 58 * (2 + 257 * 3).
  EXPECT_EQ(tensors.size(), 3 + 61 * 9 + 3 * 3 + 58 * (2 + 257 * 3));

  const ModelConfig small = ConfigOf(
      SyntheticOptions{.preset = "v3", .n_routed_experts = 2, .num_layers = 2});
  EXPECT_EQ(small.num_hidden_layers, 2);
  EXPECT_EQ(small.first_k_dense_replace, 1);
  EXPECT_EQ(small.n_group, 2);
  std::map<std::string, SyntheticTensor> m;
  for (const SyntheticTensor& t : SyntheticTensors(small)) m[t.spec.name] = t;
  using Shape = std::vector<int64_t>;
  const std::pair<std::string, Shape> expected[] = {
      {"model.embed_tokens.weight", {129280, 7168}},
      {"model.layers.0.input_layernorm.weight", {7168}},
      {"model.layers.0.self_attn.q_a_proj.weight", {1536, 7168}},
      {"model.layers.0.self_attn.q_a_layernorm.weight", {1536}},
      {"model.layers.0.self_attn.q_b_proj.weight", {24576, 1536}},
      {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", {576, 7168}},
      {"model.layers.0.self_attn.kv_a_layernorm.weight", {512}},
      {"model.layers.0.self_attn.kv_b_proj.weight", {32768, 512}},
      {"model.layers.0.self_attn.o_proj.weight", {7168, 16384}},
      {"model.layers.0.post_attention_layernorm.weight", {7168}},
      {"model.layers.0.mlp.gate_proj.weight", {18432, 7168}},
      {"model.layers.0.mlp.up_proj.weight", {18432, 7168}},
      {"model.layers.0.mlp.down_proj.weight", {7168, 18432}},
      {"model.layers.1.mlp.gate.weight", {2, 7168}},
      {"model.layers.1.mlp.gate.e_score_correction_bias", {2}},
      {"model.layers.1.mlp.experts.1.gate_proj.weight", {2048, 7168}},
      {"model.layers.1.mlp.experts.1.up_proj.weight", {2048, 7168}},
      {"model.layers.1.mlp.experts.1.down_proj.weight", {7168, 2048}},
      {"model.layers.1.mlp.shared_experts.gate_proj.weight", {2048, 7168}},
      {"model.layers.1.mlp.shared_experts.down_proj.weight", {7168, 2048}},
      {"model.norm.weight", {7168}},
      {"lm_head.weight", {129280, 7168}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(m.count(name)) << name;
    EXPECT_EQ(m[name].spec.shape, shape) << name;
    EXPECT_EQ(m[name].spec.dtype, name.find("bias") != std::string::npos ? DType::kF32
                                                                          : DType::kBF16);
  }
  EXPECT_EQ(m.size(), 3 + 2 * 9 + 3 + 2 + 3 * 3);
  EXPECT_FALSE(m.count("model.layers.1.mlp.experts.2.gate_proj.weight"));
  EXPECT_FALSE(m.count("model.layers.2.input_layernorm.weight"));
}

TEST(SyntheticCheckpoint, V3DefaultKeepsGroupLimitedRoutingValid) {
  const ModelConfig c = ConfigOf(SyntheticOptions{.preset = "v3"});
  EXPECT_EQ(c.n_routed_experts, 8);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_NEAR(c.SoftmaxScale(), 0.1352337789, 1e-7);
}

TEST(SyntheticCheckpoint, TinyMlaHasTheGpuKernelsHeadDims) {
  auto text = SyntheticConfigJson(SyntheticOptions{.preset = "tiny-mla"});
  ASSERT_TRUE(text.ok()) << text.status();
  auto parsed = ParseModelConfig(*text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ModelConfig& c = *parsed;
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.hidden_size, 256);  // the tiny widths otherwise
  EXPECT_EQ(c.vocab_size, 1024);
}

TEST(SyntheticCheckpoint, RejectsBadOptions) {
  EXPECT_EQ(SyntheticConfigJson(SyntheticOptions{.preset = "huge"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(WriteSyntheticCheckpoint(Tiny(0, 0.0), FreshDir("bad")).ok());
  EXPECT_FALSE(WriteSyntheticCheckpoint(SyntheticOptions{.preset = "tiny", .n_routed_experts = 6},
                                        FreshDir("bad"))
                   .ok());  // 6 experts do not split into tiny's 4 groups
}

}  // namespace
}  // namespace mla::tools
