// model_config_fuzzer: mla::ParseModelConfig over arbitrary config.json text.
//
// Properties: parsing never crashes and fails only with InvalidArgument. When it succeeds, the
// validated ranges hold (positive sizes, even rope dim, experts divisible into groups, token ids
// inside the vocabulary, ...) and every derived-size method runs without undefined behavior
// (UndefinedBehaviorSanitizer aborts on a signed overflow or an out-of-range float conversion;
// a config that makes TotalParams loop for seconds shows up as a libFuzzer timeout).
// Seeds: tests/fuzz/corpus/model_config_fuzzer (made by tests/fuzz/make_seeds.py).
// Mutation: structure-aware on the JSON document half of the time (json_mutator.h).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/json_mutator.h"
#include "worker/model_config.h"

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  return mla::fuzz::MutateJsonInput(data, size, max_size, seed);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = mla::ParseModelConfig(text);
  if (!config.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(config.status()), config.status().ToString());
    return 0;
  }
  const mla::ModelConfig& c = *config;
  for (int64_t v : {c.vocab_size, c.hidden_size, c.intermediate_size, c.moe_intermediate_size,
                    c.num_hidden_layers, c.num_attention_heads, c.q_lora_rank, c.kv_lora_rank,
                    c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.n_routed_experts,
                    c.num_experts_per_tok, c.max_position_embeddings, c.moe_layer_freq, c.n_group,
                    c.topk_group}) {
    FUZZ_CHECK(v > 0, v);
  }
  FUZZ_CHECK(c.qk_rope_head_dim % 2 == 0);
  FUZZ_CHECK(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.num_hidden_layers);
  FUZZ_CHECK(c.n_shared_experts >= 0);
  FUZZ_CHECK(c.n_routed_experts % c.n_group == 0 && c.topk_group <= c.n_group);
  FUZZ_CHECK(c.num_experts_per_tok <= c.n_routed_experts);
  FUZZ_CHECK(c.bos_token_id >= 0 && c.bos_token_id < c.vocab_size);
  FUZZ_CHECK(c.eos_token_id >= 0 && c.eos_token_id < c.vocab_size);
  FUZZ_CHECK(c.rms_norm_eps > 0.0 && c.routed_scaling_factor > 0.0);
  FUZZ_CHECK(c.rope.theta > 1.0 && c.rope.factor >= 1.0 && std::isfinite(c.rope.factor));
  FUZZ_CHECK(c.rope.rope_dim == c.qk_rope_head_dim);

  // Every derived size; the sanitizers judge the arithmetic.
  volatile int64_t sink = 0;
  sink = c.qk_head_dim();
  sink = c.CacheValuesPerTokenPerLayer();
  sink = c.CacheBytesPerTokenPerLayer();
  sink = c.AttentionParamsPerLayer();
  sink = c.DenseMlpParams();
  sink = c.ExpertParams();
  sink = c.MoeParamsPerLayer();
  sink = c.LayerParams(0);
  sink = c.LayerParams(c.num_hidden_layers - 1);
  sink = c.IsMoeLayer(c.first_k_dense_replace);
  sink = c.TotalParams();
  const float scale = c.SoftmaxScale();
  FUZZ_CHECK(!std::isnan(scale));
  const mla::kernels::MlaDims dims = c.MlaDimsForHeads(c.num_attention_heads);
  sink = dims.d_qk();
  FUZZ_CHECK(dims.d_cache() == c.CacheValuesPerTokenPerLayer());
  const mla::kernels::MoeRouting routing = c.Routing();
  FUZZ_CHECK(routing.num_experts == c.n_routed_experts && routing.top_k == c.num_experts_per_tok);
  (void)sink;
  return 0;
}
