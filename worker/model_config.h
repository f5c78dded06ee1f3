// ModelConfig: the DeepSeek-V3 hyperparameters read from a Hugging Face config.json, and the
// sizes derived from them (MODEL.md §1, §8).
//
// ParseModelConfig validates every field the model uses: a missing, mistyped or inconsistent
// field gives InvalidArgument naming the field. Derived sizes are computed from the fields, never
// stored. Immutable after parsing; safe to share between threads.
#ifndef MLASERVE_WORKER_MODEL_CONFIG_H_
#define MLASERVE_WORKER_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"

namespace mla {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;       // dense MLP width
  int64_t moe_intermediate_size = 0;   // routed and shared expert width
  int64_t num_hidden_layers = 0;
  int64_t first_k_dense_replace = 0;   // layers [0, k) are dense
  int64_t moe_layer_freq = 1;
  int64_t num_attention_heads = 0;
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = true;
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  bool tie_word_embeddings = false;
  kernels::RopeConfig rope;            // rope_theta + rope_scaling (YaRN)

  // Derived sizes.
  bool IsMoeLayer(int64_t layer) const;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t CacheValuesPerTokenPerLayer() const { return kv_lora_rank + qk_rope_head_dim; }
  int64_t CacheBytesPerTokenPerLayer() const { return 2 * CacheValuesPerTokenPerLayer(); }  // bf16
  int64_t AttentionParamsPerLayer() const;  // q_a, q_norm, q_b, kv_a, kv_norm, kv_b, o
  int64_t DenseMlpParams() const;           // 3 * hidden * intermediate
  int64_t ExpertParams() const;             // 3 * hidden * moe_intermediate
  int64_t MoeParamsPerLayer() const;        // routed + shared experts, router weight and bias
  int64_t LayerParams(int64_t layer) const; // attention + FFN + the two layer norms
  int64_t TotalParams() const;              // embedding, layers, final norm, head
  float SoftmaxScale() const;               // MODEL.md §3.4
  kernels::MlaDims MlaDimsForHeads(int64_t heads) const;
  kernels::MoeRouting Routing() const;
};

// Parses and validates the text of a config.json.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);

// Reads and parses `path` (a config.json file).
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace mla

#endif  // MLASERVE_WORKER_MODEL_CONFIG_H_
