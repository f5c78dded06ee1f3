// The CUDA backend of kernels/ops.h: kernels::cuda, one launcher per op, named like its CPU twin
// in kernels::cpu (STYLE.md L1) and computing the same function on device pointers.
//
// Conventions, beyond those of kernels/ops.h (shapes, dtypes, aliasing are the CPU twin's):
// - Every pointer is a device pointer. Work is enqueued on `stream` and returns before it runs;
//   the Status reports launch errors (cudaGetLastError after each launch), not faults of the
//   running kernel, which surface at the next synchronising call.
// - Launchers never allocate, copy to the host or synchronise, so a step can be captured in a
//   CUDA graph. Any host thread may call them; calls on one stream run in order.
// - fp32 math matches the CPU twin to rounding (the order of a reduction differs); ops with
//   bf16 operands say so (Linear, MlaDecodeAttention, the MLA absorb projections, the prefill
//   up-projection).
// The larger families have their own headers, included here: mla_decode/mla_decode.h
// (absorbed MLA decode attention, plan + run + combine), linear/linear.h (cuBLASLt),
// mla_absorb/mla_absorb.h (MlaAbsorbQuery, MlaUnabsorbOutput), mla_prefill/mla_prefill.h
// (MlaPrefillAttention, plan + run), moe/moe.h (MoeGate, MoeDispatch, MoeCombine) and
// sample/sample.h (Sample, plan + run).
#ifndef MLASERVE_KERNELS_CUDA_OPS_H_
#define MLASERVE_KERNELS_CUDA_OPS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/bf16.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_absorb/mla_absorb.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/cuda/sample/sample.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {

// y[r] = weight * x[r] / sqrt(mean(x[r]^2) + eps). x, y: [rows, dim]; y may alias x.
absl::Status RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                     float* y, cudaStream_t stream);

// residual[r] += delta[r]; y[r] = RmsNorm(residual[r]), fused in one pass over each row.
// y may alias delta or residual.
absl::Status AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows,
                        int64_t dim, float eps, float* y, cudaStream_t stream);

// In-place interleaved-pair rotary embedding, cpu::ApplyRope's contract: the angle is
// float(positions[r]) * inv_freq[i] in float32, cos/sin by the accurate cosf/sinf.
// positions: [rows] int32, inv_freq: [rope_dim / 2] float (cpu::YarnInverseFrequencies).
absl::Status ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                       int64_t head_stride, const int32_t* positions, const float* inv_freq,
                       int64_t rope_dim, float cos_sin_scale, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i] for i < n. out may alias gate or up.
absl::Status SiluMul(const float* gate, const float* up, int64_t n, float* out,
                     cudaStream_t stream);

// out[j] = x[index[j] / divisor] (rows of dim floats), j < count: the MoE's gather of an
// expert's tokens. Exact (a copy). No CPU twin: the CPU backend copies rows in a loop.
// REQUIRES: divisor > 0 (INVALID_ARGUMENT otherwise); out does not alias x.
absl::Status GatherRows(const float* x, const int32_t* index, int64_t count, int64_t divisor,
                        int64_t dim, float* out, cudaStream_t stream);

// y[i] += x[i] for i < n, one float32 add each (the host's result). y may alias x. No CPU twin:
// the CPU backend adds in a loop.
absl::Status Add(const float* x, int64_t n, float* y, cudaStream_t stream);

// out[t] = table[ids[t] - vocab_begin] for ids in [vocab_begin, vocab_end), else zeros.
absl::Status Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
                   int64_t vocab_begin, int64_t vocab_end, float* out, cudaStream_t stream);

// Writes each token's normalised latent and rotated rope key, rounded to bf16 (nearest even),
// into cache slot in.slots[t] (kernels/ops.h WriteLatentCache; latent_cache/): RmsNorm, RoPE and
// the write in one kernel, with exactly RmsNorm's and ApplyRope's float32 arithmetic above.
// Slots must be distinct; a negative slot is skipped (a padding row).
absl::Status WriteLatentCache(const LatentWrite& in, const LatentCache& cache,
                              cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_OPS_H_
