// ModelWeights: the tensors of one shard (a layer range and a tensor-parallel rank), held in
// a backend's memory as bf16 matrices ([out, in], PyTorch layout) and float norm vectors.
//
// LoadModelWeights reads only the shard's tensors, and of a tensor-parallel weight only this
// rank's rows or columns (MODEL.md §7.1): q_b/kv_b by whole heads, o_proj by head columns,
// dense and shared-expert gate/up by rows and down by columns, routed experts by expert id,
// embedding and lm_head by vocab rows. Replicated: q_a, kv_a, their norms, the router.
// Immutable after loading; safe to read from any thread.
#ifndef MLASERVE_WORKER_MODEL_WEIGHTS_H_
#define MLASERVE_WORKER_MODEL_WEIGHTS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/bf16.h"
#include "worker/backend.h"
#include "worker/checkpoint.h"
#include "worker/model.h"

namespace mla {

struct MlpWeights {          // SwiGLU: down(silu(gate x) * up x)
  int64_t width = 0;         // this rank's intermediate width
  Array<bf16> gate;    // [width, hidden]
  Array<bf16> up;      // [width, hidden]
  Array<bf16> down;    // [hidden, width]
};

struct MoeWeights {
  Array<bf16> router;          // [n_routed_experts, hidden], replicated
  Array<float> router_bias;    // [n_routed_experts] (e_score_correction_bias)
  int64_t expert_begin = 0;          // this rank's experts: [expert_begin, expert_begin + size)
  std::vector<MlpWeights> experts;
  std::optional<MlpWeights> shared;  // n_shared_experts * moe_intermediate wide, TP-split
};

struct AttentionWeights {
  Array<float> q_a_norm;   // [q_lora]
  Array<bf16> q_a;         // [q_lora, hidden]
  Array<bf16> q_b;         // [heads * qk_head_dim, q_lora], this rank's heads
  Array<bf16> kv_a;        // [kv_lora + rope, hidden]
  Array<float> kv_a_norm;  // [kv_lora]
  Array<bf16> kv_b;        // [heads * (nope + v), kv_lora], this rank's heads
  Array<bf16> o;           // [hidden, heads * v], this rank's head columns
};

struct LayerWeights {
  int64_t layer = 0;                   // global layer id
  Array<float> input_norm;       // [hidden]
  Array<float> post_attn_norm;   // [hidden]
  AttentionWeights attn;
  std::optional<MlpWeights> dense;     // layers < first_k_dense_replace
  std::optional<MoeWeights> moe;       // the others
};

struct ModelWeights {
  ModelConfig config;
  ShardSpec shard;                     // layer_end resolved
  int64_t local_heads = 0;
  int64_t vocab_begin = 0, vocab_end = 0;  // this rank's vocabulary rows
  Array<bf16> embed;             // first stage: [vocab_end - vocab_begin, hidden]
  std::vector<LayerWeights> layers;    // [layer_begin, layer_end)
  Array<float> final_norm;       // last stage: [hidden]
  Array<bf16> lm_head;           // last stage: [vocab_end - vocab_begin, hidden]
  bool first_stage() const { return shard.layer_begin == 0; }
  bool last_stage() const { return shard.layer_end == config.num_hidden_layers; }
};

// InvalidArgument when the shard does not fit the model (layer range, tp_size not dividing heads,
// routed experts, vocabulary or widths).
// The tensors go to `backend`'s memory (host, or straight to the device).
absl::StatusOr<ModelWeights> LoadModelWeights(const Checkpoint& checkpoint, ShardSpec shard,
                                              Backend& backend);

}  // namespace mla

#endif  // MLASERVE_WORKER_MODEL_WEIGHTS_H_
