// Materialised (prefill) MLA attention on the GPU: the twin of cpu::MlaPrefillAttention
// (MODEL.md §3.2 steps 6-8), causal, over the paged latent cache, for ragged batches with a
// cached prefix (query row i of sequence s sits at position context_len - q_len + i).
//
//   k^N_j = W_UK_h c_j,  v_j = W_UV_h c_j                 (up-projected once per step)
//   s_j   = scale * (q^N . k^N_j + q^R . k^R_j)   j <= position
//   out   = sum_j softmax(s)_j v_j                (online softmax, fp32 state in registers)
//
// Three steps on the stream (mla_prefill.cu): gather the context's cached rows (bf16) into a
// contiguous workspace; up-project them with cuda::LinearBf16Out (cuBLASLt, bf16 x bf16, fp32
// accumulation, output rounded to bf16) to per-head K^N and V [context_tokens, heads, 256]; then a
// flash-attention kernel on the tensor cores (attention.cu: mma.sync m16n8k16, bf16 operands).
// Numerics: the up-projection has the CPU's bf16 operands and fp32 accumulation, but K^N and V
// are then rounded to bf16, and so are q (the caller's fp32) and the softmax weights p before
// P V; scores, the softmax state (max, sum) and the output accumulate in fp32. The rope keys are
// the cache's bf16 values, exact. Relative to the CPU twin (fp32 after the up-projection) this is
// a bf16-operand result: relative L2 error ~5e-3 (bound 1e-2, tests/gpu/).
//
// The plan is host work and needs what the worker knows on the host: the step's token count
// and the sum of the sequences' context lengths. Run never allocates or synchronises.
#ifndef MLASERVE_KERNELS_CUDA_MLA_PREFILL_MLA_PREFILL_H_
#define MLASERVE_KERNELS_CUDA_MLA_PREFILL_MLA_PREFILL_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {

// Sizes of one step and the layout of its workspace (byte offsets, 256-byte aligned).
struct MlaPrefillPlan {
  int64_t num_seqs = 0;
  int64_t tokens = 0;          // q_start[num_seqs]
  int64_t context_tokens = 0;  // sum over sequences of context_lens[s]
  int64_t heads = 0;
  int64_t d_latent = 0;
  int64_t max_tiles = 0;       // bound on the 64-row query tiles: ceil(tokens / 64) + num_seqs
  size_t ctx_start = 0;        // int32 [num_seqs + 1]: first gathered row of each sequence
  size_t tile_start = 0;       // int32 [num_seqs + 1]: first query tile of each sequence
  size_t latent = 0;           // bf16 [context_tokens, d_latent]: the gathered latents
  size_t rope = 0;             // bf16 [context_tokens, d_rope]: the gathered rope keys
  size_t kv = 0;               // bf16 [context_tokens, heads, 256]: K^N (128) then V (128)
  size_t workspace_bytes = 0;
};

// REQUIRES: the arguments are the step's (tokens = q_start[num_seqs], context_tokens = the sum
// of context_lens); the kernels skip what lies past them rather than read out of bounds.
MlaPrefillPlan PlanMlaPrefill(int64_t num_seqs, int64_t tokens, int64_t context_tokens,
                              const MlaDims& dims);

// params: as for the CPU (device pointers; q and out 8-byte aligned); linear: the cuBLASLt
// context of the up-projection; workspace: plan.workspace_bytes of device memory, 256-byte
// aligned. Returns UNIMPLEMENTED for dims other than d_nope 128 / d_rope 64 / d_v 128,
// INVALID_ARGUMENT for a plan, cache, pointer or workspace that does not fit (messages name the
// field, the expected and the actual value). Sm_90a only (the build's target); the attention
// kernel uses 84 KB of shared memory per CTA.
absl::Status MlaPrefillAttention(LinearContext& linear, const MlaPrefillParams& params,
                                 const MlaPrefillPlan& plan, void* workspace,
                                 cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_PREFILL_MLA_PREFILL_H_
