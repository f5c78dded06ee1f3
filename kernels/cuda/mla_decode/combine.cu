// Combine of the split-KV decode (plan.h's workspace -> the final output), STYLE.md F4 / I2.
//
// For each (cut token t, head) row, over the lanes i = first_lane .. last_lane holding a piece
// of t (slot cut.first_slot in first_lane, 2i in the later ones, which begin inside t; plan.h):
//   (m, d) = Merge over i of (m_i, d_i)                                   SoftmaxState, fp32
//   o      = sum_i theirs_i * partial_out_i,  theirs_i = exp(m_i - m)     (Merge's factor)
//   out_latent = o / d,  lse = m + ln d
// partial_out [slots, heads, 512] f32 (unnormalised), partial_state [slots, heads] (m, d) f32;
// out_latent [tokens, heads, 512], lse [tokens, heads] (may be null). Rows of tokens that are
// not cut were written by the split kernel and are not touched.
// The cuts come from the device plan (one 16-byte load per row, with num_cuts beside it), so a
// launch captured in a CUDA graph follows the plan uploaded for each replay. One block of
// groups x 128 threads per (cut, head) row: a plain launch has exactly num_cuts * heads blocks;
// a fixed one has one wave of blocks (at most kMaxLanes * heads) that stride over the rows, and
// those past num_cuts * heads exit. The pieces' states go through shared memory first, warp 0
// merges the row's (m, d) from them (MergePieces) and computes each piece's factor once into
// shared memory; then the weighted partial rows are summed in one fixed order whatever the
// launch: kSums = 4 interleaved sums (sum s takes pieces s, s + 4, ... in turn), added as
// ((S0 + S1) + S2) + S3.
// With 4 groups, thread (g, c) makes S_g for its 4 columns c (one float4); with 1 group, thread
// c makes all four. So the two forms give the same bits, and a plain launch, a fixed one and a
// graph replay of either agree bit for bit.
// Groups: 4 for steps of at most kFewTokens query rows, whose cut rows hold many pieces (a row
// of a long context cut into 66 pieces is 132 KB of partial rows: with one group, B = 1 at 32k
// keys spent longer in the combine than in the split kernel; bench/RESULTS.md), else 1 (many
// cut rows of a few pieces each: small blocks keep more rows in flight).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/launch_checks.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/once_per_device.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kColumnThreads = mla_decode::kDLatent / 4;  // one float4 of the row each
constexpr int kSums = 4;           // the fixed summation order's interleaved sums
constexpr int64_t kFewTokens = 8;  // steps of at most this many rows combine with 4 groups

// One 16-byte load of a cut (read-only while the kernel runs: the non-coherent path).
__device__ __forceinline__ MlaDecodeCut LoadCut(const MlaDecodeCut* cut) {
  const int4 v = __ldg(reinterpret_cast<const int4*>(cut));
  return MlaDecodeCut{.token = v.x, .first_lane = v.y, .last_lane = v.z, .first_slot = v.w};
}

// warp: the (m, d) of pieces 0 .. pieces - 1, the same bits in every lane. Lane l merges pieces
// l, l + 32, ... in turn, then the lanes' states are merged in a butterfly (Merge is commutative
// bit for bit: the two products are the same and the sum is one addition), so the result does
// not depend on the launch form, only on the pieces. A chain of 66 merges (a row cut into 66
// pieces) took every thread of the block several microseconds.
__device__ __forceinline__ SoftmaxState MergePieces(const float2* state, int pieces) {
  SoftmaxState merged;
  for (int i = threadIdx.x % 32; i < pieces; i += 32) {
    merged.Merge(SoftmaxState{state[i].x, state[i].y});
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const SoftmaxState other{__shfl_xor_sync(0xffffffffu, merged.m, offset),
                             __shfl_xor_sync(0xffffffffu, merged.d, offset)};
    merged.Merge(other);
  }
  return merged;
}

template <int kGroups>  // 1 or kSums
__global__ void __launch_bounds__(kGroups * kColumnThreads)
    MlaDecodeCombineKernel(const MlaDecodeCuts* cuts, int64_t heads, const float* partial_out,
                           const float2* partial_state, float* out_latent, float* lse) {
  __shared__ float2 piece_state[kMaxLanes];  // (m, d) of each piece of the row
  __shared__ float piece_weight[kMaxLanes];  // exp(m_i - m): each piece's factor
  __shared__ float2 row_state;               // the row's (m, d)
  static_assert(kGroups == 1 || kGroups == kSums, "one group makes every sum, or one each");
  constexpr int kThreads = kGroups * kColumnThreads;
  constexpr int kSumsPerThread = kSums / kGroups;
  __shared__ float4 group_sum[kGroups > 1 ? kGroups - 1 : 1][kColumnThreads];  // S_1.. (4 groups)
  const int group = threadIdx.x / kColumnThreads;
  const int column = threadIdx.x % kColumnThreads;
  // Both loads at once: blockIdx.x < kMaxLanes * heads (the launcher's grid), so the first
  // row's cut index is inside the array before num_cuts is known.
  const int64_t rows = int64_t{__ldg(&cuts->num_cuts)} * heads;
  MlaDecodeCut cut = LoadCut(&cuts->cut[blockIdx.x / heads]);
  for (int64_t row_index = blockIdx.x; row_index < rows; row_index += gridDim.x) {
    if (row_index != blockIdx.x) cut = LoadCut(&cuts->cut[row_index / heads]);
    const int64_t head = row_index % heads;
    const int pieces = cut.last_lane - cut.first_lane + 1;
    auto slot_of = [&](int i) {  // piece i of the row: lane first_lane + i
      return i == 0 ? int64_t{cut.first_slot} : 2 * (int64_t{cut.first_lane} + i);
    };
    for (int i = threadIdx.x; i < pieces; i += kThreads) {
      piece_state[i] = partial_state[slot_of(i) * heads + head];
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // warp 0: the row's (m, d) and each piece's factor
      SoftmaxState total = MergePieces(piece_state, pieces);
      for (int i = threadIdx.x; i < pieces; i += 32) {
        SoftmaxState probe = total;  // m_i <= m: Merge's `theirs` is exp(m_i - m), 0 if empty
        piece_weight[i] = probe.Merge(SoftmaxState{piece_state[i].x, piece_state[i].y}).theirs;
      }
      if (threadIdx.x == 0) row_state = make_float2(total.m, total.d);
    }
    __syncthreads();
    const SoftmaxState total{row_state.x, row_state.y};
    // acc[j]: sum S_{group + j kGroups} (pieces i = group + j kGroups + kSums n, n = 0, 1, ...).
    float4 acc[kSumsPerThread];
#pragma unroll
    for (int j = 0; j < kSumsPerThread; ++j) acc[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 2
    for (int i0 = group; i0 < pieces; i0 += kSums) {
#pragma unroll
      for (int j = 0; j < kSumsPerThread; ++j) {
        const int i = i0 + j * kGroups;
        if (i >= pieces) break;
        const float w = piece_weight[i];
        const float4 o = reinterpret_cast<const float4*>(
            partial_out + (slot_of(i) * heads + head) * mla_decode::kDLatent)[column];
        acc[j].x += w * o.x;
        acc[j].y += w * o.y;
        acc[j].z += w * o.z;
        acc[j].w += w * o.w;
      }
    }
    if (kGroups > 1 && group > 0) group_sum[group - 1][column] = acc[0];
    __syncthreads();
    if (group == 0) {
      float4 total_sum = acc[0];
#pragma unroll
      for (int k = 1; k < kSums; ++k) {  // ((S0 + S1) + S2) + S3
        const float4 o = kGroups == 1 ? acc[k % kSumsPerThread] : group_sum[k - 1][column];
        total_sum.x += o.x;
        total_sum.y += o.y;
        total_sum.z += o.z;
        total_sum.w += o.w;
      }
      const float inv_sum = total.InverseSum();
      const int64_t row = cut.token * heads + head;
      reinterpret_cast<float4*>(out_latent + row * mla_decode::kDLatent)[column] =
          make_float4(total_sum.x * inv_sum, total_sum.y * inv_sum, total_sum.z * inv_sum,
                      total_sum.w * inv_sum);
      if (lse != nullptr && column == 0) lse[row] = total.Lse();
    }
    if (row_index + gridDim.x < rows) __syncthreads();  // shared memory is rewritten next
  }
}

// Blocks of a fixed launch: one wave at the kernel's occupancy (queried once per device), at
// most one per possible row.
template <int kGroups>
absl::StatusOr<int64_t> FixedLaunchBlocks(int64_t heads) {
  static PerDeviceSlots waves;
  absl::StatusOr<int64_t> wave = OncePerDevice(waves, []() -> absl::StatusOr<int64_t> {
    int device = 0, sms = 0, per_sm = 0;
    MLA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    MLA_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    MLA_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm, MlaDecodeCombineKernel<kGroups>, kGroups * kColumnThreads, 0));
    return std::max<int64_t>(int64_t{sms} * per_sm, 1);
  });
  if (!wave.ok()) return wave.status();
  return std::min<int64_t>(*wave, int64_t{kMaxLanes} * heads);
}

template <int kGroups>
absl::Status LaunchCombine(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch,
                           float* out_latent, float* lse, cudaStream_t stream) {
  const int64_t heads = plan.heads;
  int64_t blocks = int64_t{plan.cuts.num_cuts} * heads;
  if (launch.grid_lanes > 0) {  // fixed
    absl::StatusOr<int64_t> wave = FixedLaunchBlocks<kGroups>(heads);
    if (!wave.ok()) return wave.status();
    blocks = *wave;
  }
  const int64_t slots = mla_decode::WorkspaceSlots(plan, launch);
  const float* partial_out = static_cast<const float*>(launch.workspace);
  const float2* partial_state =
      reinterpret_cast<const float2*>(partial_out + slots * heads * mla_decode::kDLatent);
  MlaDecodeCombineKernel<kGroups><<<static_cast<unsigned>(blocks), kGroups * kColumnThreads, 0,
                                    stream>>>(&launch.device_plan->cuts, heads, partial_out,
                                              partial_state, out_latent, lse);
  return LaunchStatus("MlaDecodeCombineKernel");
}

}  // namespace

absl::Status MlaDecodeCombine(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch,
                              float* out_latent, float* lse, cudaStream_t stream) {
  const bool fixed = launch.grid_lanes > 0;
  if (!fixed && plan.cuts.num_cuts == 0) return absl::OkStatus();
  if (absl::Status s = mla_decode::CheckMlaDecodeCombine(plan, launch, out_latent); !s.ok()) {
    return s;
  }
  return plan.tokens <= kFewTokens ? LaunchCombine<4>(plan, launch, out_latent, lse, stream)
                                    : LaunchCombine<1>(plan, launch, out_latent, lse, stream);
}

}  // namespace mla::kernels::cuda
