// The flash-attention step of the MLA prefill (internal to mla_prefill/: MlaPrefillAttention in
// mla_prefill.cu fills the workspace and calls LaunchPrefillAttention; see attention.cu for the
// kernel's design). Every pointer is a device pointer.
#ifndef MLASERVE_KERNELS_CUDA_MLA_PREFILL_ATTENTION_H_
#define MLASERVE_KERNELS_CUDA_MLA_PREFILL_ATTENTION_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/bf16.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_prefill {

struct AttentionArgs {
  RaggedBatch batch;                    // the step's sequences (q_start, context_lens used)
  const float* q = nullptr;             // [tokens, heads, 192], 8-byte aligned
  const bf16* kv = nullptr;             // [context_tokens, heads, 256]: per head K^N then V
  const bf16* rope = nullptr;           // [context_tokens, 64]: the keys' rope parts
  const int32_t* ctx_start = nullptr;   // [num_seqs + 1]: first row of kv / rope per sequence
  const int32_t* tile_start = nullptr;  // [num_seqs + 1]: first query tile per sequence
  int64_t heads = 0;
  int64_t context_tokens = 0;           // rows of kv and rope (the plan's)
  float scale_log2 = 0.0f;              // softmax_scale * log2(e): scores in base 2
  float* out = nullptr;                 // [tokens, heads, 128], 8-byte aligned
};

// One CTA per (query tile, head): grid (max_tiles, heads); tiles past tile_start[num_seqs] exit.
// REQUIRES: max_tiles >= tile_start[num_seqs] (the plan's bound); 1 <= heads <= 65535.
absl::Status LaunchPrefillAttention(const AttentionArgs& args, int64_t max_tiles,
                                    cudaStream_t stream);

}  // namespace mla::kernels::cuda::mla_prefill

#endif  // MLASERVE_KERNELS_CUDA_MLA_PREFILL_ATTENTION_H_
