// Combine of the split-KV decode (plan.h's workspace -> the final output), STYLE.md F4 / I2.
//
// For each (token, head) row, over the splits s whose state is not empty:
//   (m, d) <- Merge((m, d), (m_s, d_s))   with factors (mine, theirs)     SoftmaxState, fp32
//   o      <- mine * o + theirs * partial_out_s
//   out_latent = o / d,  lse = m + ln d
// partial_out [num_splits, tokens, heads, 512] f32 (unnormalised), partial_state [num_splits,
// tokens, heads] (m, d) f32; out_latent [tokens, heads, 512], lse [tokens, heads] (may be null).
// One block of 128 threads per row, 4 columns (one float4) per thread.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = mla_decode::kDLatent / 4;

__global__ void __launch_bounds__(kThreads)
    MlaDecodeCombineKernel(int64_t num_splits, int64_t rows, const float* partial_out,
                           const float2* partial_state, float* out_latent, float* lse) {
  const int64_t row = blockIdx.x;
  SoftmaxState state;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int64_t s = 0; s < num_splits; ++s) {
    const int64_t slot = s * rows + row;
    const float2 md = partial_state[slot];
    const SoftmaxState part{md.x, md.y};
    if (part.Empty()) continue;  // a split past the row's context
    const SoftmaxRescale f = state.Merge(part);
    const float4 o =
        reinterpret_cast<const float4*>(partial_out + slot * mla_decode::kDLatent)[threadIdx.x];
    acc.x = acc.x * f.mine + o.x * f.theirs;
    acc.y = acc.y * f.mine + o.y * f.theirs;
    acc.z = acc.z * f.mine + o.z * f.theirs;
    acc.w = acc.w * f.mine + o.w * f.theirs;
  }
  const float inv_sum = state.InverseSum();
  reinterpret_cast<float4*>(out_latent + row * mla_decode::kDLatent)[threadIdx.x] =
      make_float4(acc.x * inv_sum, acc.y * inv_sum, acc.z * inv_sum, acc.w * inv_sum);
  if (lse != nullptr && threadIdx.x == 0) lse[row] = state.Lse();
}

}  // namespace

absl::Status MlaDecodeCombine(const MlaDecodePlan& plan, const void* workspace, float* out_latent,
                              float* lse, cudaStream_t stream) {
  const int64_t rows = plan.tokens * plan.heads;
  if (rows == 0) return absl::OkStatus();
  const float* partial_out = static_cast<const float*>(workspace);
  const float2* partial_state =
      reinterpret_cast<const float2*>(partial_out + plan.partial_out_floats());
  MlaDecodeCombineKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      plan.num_splits, rows, partial_out, partial_state, out_latent, lse);
  return LaunchStatus("MlaDecodeCombineKernel");
}

}  // namespace mla::kernels::cuda
