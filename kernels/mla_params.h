// Parameter structs of the MLA attention ops: the paged latent cache, the ragged batch, and the
// prefill (materialised) and decode (absorbed) calls. Shared by the CPU reference and the CUDA
// kernels; plain structs, filled by named field.
//
// The batch is ragged: sequence s owns query rows [q_start[s], q_start[s+1]) of the step's tokens,
// and its context (cached tokens including this step's, already written to the cache) has
// context_lens[s] tokens. Query row i of the sequence sits at position
// context_lens[s] - q_len + i and attends to keys 0..position (causal).
#ifndef MLASERVE_KERNELS_MLA_PARAMS_H_
#define MLASERVE_KERNELS_MLA_PARAMS_H_

#include <cstdint>

#include "kernels/bf16.h"

namespace mla::kernels {

inline constexpr int64_t kBlockSize = 64;  // tokens per cache block

struct MlaDims {
  int64_t heads = 0;     // query heads on this rank
  int64_t d_latent = 0;  // kv_lora_rank (512 for V3)
  int64_t d_rope = 0;    // qk_rope_head_dim (64)
  int64_t d_nope = 0;    // qk_nope_head_dim (128)
  int64_t d_v = 0;       // v_head_dim (128)
  int64_t d_cache() const { return d_latent + d_rope; }
  int64_t d_qk() const { return d_nope + d_rope; }
};

// One layer's latent cache: num_blocks blocks of kBlockSize slots, each slot the bf16 latent
// (d_latent) followed by the bf16 rotated rope key (d_rope).
struct LatentCache {
  bf16* data = nullptr;     // [num_blocks, kBlockSize, d_latent + d_rope]
  int64_t num_blocks = 0;
  int64_t d_latent = 0;
  int64_t d_rope = 0;
};

// The inputs of the fused latent-cache write (ops.h WriteLatentCache): each token's projected
// key/value latent before its norm and rope.
struct LatentWrite {
  const float* kv = nullptr;           // [tokens, d_latent + d_rope]: W_kva x
  const float* norm_weight = nullptr;  // [d_latent]: kv_a_layernorm
  float eps = 0.0f;                    // its epsilon
  const int32_t* positions = nullptr;  // [tokens]
  const float* inv_freq = nullptr;     // [d_rope / 2]: YaRN inverse frequencies
  float cos_sin_scale = 1.0f;          // ApplyRope's
  const int64_t* slots = nullptr;      // [tokens]: cache slot; negative: not written (padding)
  int64_t tokens = 0;
};

struct RaggedBatch {
  int64_t num_seqs = 0;
  const int32_t* q_start = nullptr;       // [num_seqs + 1], q_start[0] = 0, non-decreasing
  const int32_t* context_lens = nullptr;  // [num_seqs], >= q_len of the sequence
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]; entries past
                                          // ceil(context_len / kBlockSize) are never read
  int64_t max_blocks_per_seq = 0;
};

struct MlaPrefillParams {
  MlaDims dims;
  RaggedBatch batch;
  LatentCache cache;
  const float* q = nullptr;      // [tokens, heads, d_nope + d_rope], rope already applied
  const bf16* wkv_b = nullptr;   // [heads * (d_nope + d_v), d_latent]: per head W_UK then W_UV
  float softmax_scale = 0.0f;
  float* out = nullptr;          // [tokens, heads, d_v]
};

struct MlaDecodeParams {
  MlaDims dims;                  // d_nope and d_v unused
  RaggedBatch batch;
  LatentCache cache;
  const float* q_abs = nullptr;  // [tokens, heads, d_latent + d_rope]
  float softmax_scale = 0.0f;
  float* out_latent = nullptr;   // [tokens, heads, d_latent]
  float* lse = nullptr;          // [tokens, heads] natural-log sum of exp(scaled scores); may be null
};

}  // namespace mla::kernels

#endif  // MLASERVE_KERNELS_MLA_PARAMS_H_
