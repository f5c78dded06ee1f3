// Absorbed MLA decode attention on the GPU (twin of cpu::MlaDecodeAttention), MODEL.md §3.3
// steps 4-5: MQA of q_abs [tokens, heads, 576] against the paged bf16 latent cache, the value
// being the first 512 values of each key.
//
//   s_j = scale * q_abs . key_j  (j <= the row's position),  out_latent = softmax(s) . c,
//   lse = ln sum_j exp(s_j)
//
// Three units (STYLE.md F4): PlanMlaDecode (plan.h, host: lanes of work balanced over the SMs),
// MlaDecodeAttention (the split-KV kernel, splitkv.cu: TMA, wgmma, warp-specialised; sm_90a)
// and MlaDecodeCombine (combine.cu), which the former calls when the plan cuts a token.
//
// Numerics: q_abs is rounded to bf16 and the softmax weights exp(s_j - m) are rounded to bf16
// before the tensor-core products (fp32 accumulation, fp32 softmax state). Against the CPU's
// all-fp32 reference this gives relative errors of about 1e-3 ("bf16 operands" tolerance).
// Only the context's blocks are read: never a block-table entry past the row's last block.
// Slots past the row's position in its last block are loaded (whole 64-slot blocks move by
// TMA) but never used: their scores are masked by a select and their values zero-filled, so
// unused slots may hold anything, NaN included.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {

// params: as for the CPU (device pointers); plan: from PlanMlaDecode for this step's rows,
// context lengths and heads; workspace: plan.workspace_bytes of device memory, 16-byte aligned
// (null when 0). The cache may hold at most 2^31 / 64 blocks (TMA coordinates are 32-bit).
// Returns UNIMPLEMENTED for dims other than d_latent 512 / d_rope 64, INVALID_ARGUMENT for a
// plan or pointers that do not fit (messages name the field, the expected and the actual value).
absl::Status MlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                void* workspace, cudaStream_t stream);

// Merges the partial results of the plan's cut tokens in `workspace` (layout in plan.h) into
// their rows of out_latent [tokens, heads, 512] and, if not null, lse [tokens, heads].
absl::Status MlaDecodeCombine(const MlaDecodePlan& plan, const void* workspace, float* out_latent,
                              float* lse, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_
