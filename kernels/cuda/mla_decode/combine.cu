// Combine of the split-KV decode (plan.h's workspace -> the final output), STYLE.md F4 / I2.
//
// For each (cut token t, head) row, over the lanes i = first_lane .. last_lane holding a piece
// of t (slot 2i if t is lane i's first token, else 2i + 1; plan.h):
//   (m, d) = Merge over i of (m_i, d_i)                                   SoftmaxState, fp32
//   o      = sum_i theirs_i * partial_out_i,  theirs_i = exp(m_i - m)     (Merge's factor)
//   out_latent = o / d,  lse = m + ln d
// partial_out [slots, heads, 512] f32 (unnormalised), partial_state [slots, heads] (m, d) f32;
// out_latent [tokens, heads, 512], lse [tokens, heads] (may be null). Rows of tokens that are
// not cut were written by the split kernel and are not touched.
// One block of 128 threads per (cut, head) row, 4 columns (one float4) per thread. The pieces'
// states go through shared memory first, so the final (m, d) and every factor are known before
// the partial rows are read, and those reads are independent (a row cut into 66 pieces costs a
// few memory latencies, not 66 in a chain).
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
    MlaDecodeCombineKernel(const __grid_constant__ MlaDecodeSchedule schedule,
                           const __grid_constant__ MlaDecodeCuts cuts, int64_t heads,
                           const float* partial_out, const float2* partial_state,
                           float* out_latent, float* lse) {
  __shared__ float2 piece_state[kMaxLanes];  // (m, d) of each piece of the row
  __shared__ int64_t piece_slot[kMaxLanes];
  const MlaDecodeCut& cut = cuts.cut[blockIdx.x / heads];
  const int64_t head = blockIdx.x % heads;
  const int pieces = cut.last_lane - cut.first_lane + 1;
  for (int i = threadIdx.x; i < pieces; i += kThreads) {
    const int32_t lane = cut.first_lane + i;
    const int64_t slot = 2 * int64_t{lane} + (schedule.lane_begin[lane].token == cut.token ? 0 : 1);
    piece_slot[i] = slot;
    piece_state[i] = partial_state[slot * heads + head];
  }
  __syncthreads();
  SoftmaxState total;  // the row's (m, d): every thread merges the pieces in the same order
  for (int i = 0; i < pieces; ++i) total.Merge(SoftmaxState{piece_state[i].x, piece_state[i].y});
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
  for (int i = 0; i < pieces; ++i) {
    SoftmaxState probe = total;  // m_i <= m: Merge's `theirs` is exp(m_i - m), 0 if empty
    const float w = probe.Merge(SoftmaxState{piece_state[i].x, piece_state[i].y}).theirs;
    const float4 o = reinterpret_cast<const float4*>(
        partial_out + (piece_slot[i] * heads + head) * mla_decode::kDLatent)[threadIdx.x];
    acc.x += w * o.x;
    acc.y += w * o.y;
    acc.z += w * o.z;
    acc.w += w * o.w;
  }
  const float inv_sum = total.InverseSum();
  const int64_t row = cut.token * heads + head;
  reinterpret_cast<float4*>(out_latent + row * mla_decode::kDLatent)[threadIdx.x] =
      make_float4(acc.x * inv_sum, acc.y * inv_sum, acc.z * inv_sum, acc.w * inv_sum);
  if (lse != nullptr && threadIdx.x == 0) lse[row] = total.Lse();
}

}  // namespace

absl::Status MlaDecodeCombine(const MlaDecodePlan& plan, const void* workspace, float* out_latent,
                              float* lse, cudaStream_t stream) {
  const int64_t rows = int64_t{plan.cuts.num_cuts} * plan.heads;
  if (rows == 0) return absl::OkStatus();
  const float* partial_out = static_cast<const float*>(workspace);
  const float2* partial_state =
      reinterpret_cast<const float2*>(partial_out + plan.partial_out_floats());
  MlaDecodeCombineKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      plan.schedule, plan.cuts, plan.heads, partial_out, partial_state, out_latent, lse);
  return LaunchStatus("MlaDecodeCombineKernel");
}

}  // namespace mla::kernels::cuda
