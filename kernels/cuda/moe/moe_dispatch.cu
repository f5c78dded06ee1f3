// MoeDispatch on the GPU (twin of cpu::MoeDispatch): a stable counting sort of the
// P = tokens * top_k (token, choice) pairs by expert id, pair p = token * top_k + choice.
//
//   count_e          = #{p : ids[p] == e}
//   expert_offsets_e = sum_{e' < e} count_e'   (CSR, expert_offsets_E = P)
//   sorted_pairs[expert_offsets_e + #{p' < p : ids[p'] == e}] = p
//
// Shapes: expert_ids [P] int32 in [0, E); expert_offsets [E + 1]; sorted_pairs [P].
// One block of kWarps warps. The pairs are cut into kWarps contiguous segments, one per warp, in
// order. Three phases (barriers between):
//   1. each warp counts its segment per expert, 32 pairs at a time: __match_any_sync groups the
//      lanes holding the same expert, and the group's highest lane adds the group's size to
//      count[warp][e] (each warp owns its row: no atomics);
//   2. exclusive prefix sums: expert_offsets over experts, then base[warp][e] = offsets_e +
//      sum_{w' < warp} count[w'][e] (in place of count);
//   3. each warp walks its segment again: a pair's slot is base[warp][e] + the number of lower
//      lanes in its match group; the group's highest lane then advances base[warp][e].
// Segments in warp order and lanes in pair order make the sort stable, so the output is the
// CPU's exactly. Shared memory: (kWarps + 1) * E int32 (36 KB at E = 1024).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/moe/moe.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;

// count[w * E + e] (then base), and offsets[e] for e <= E.
struct DispatchShared {
  int* count;    // [kWarps, E]
  int* offsets;  // [E + 1]
  __device__ static DispatchShared Carve(int* base, int experts) {
    return {base, base + kWarps * experts};
  }
  static constexpr int64_t Words(int64_t experts) { return kWarps * experts + experts + 1; }
};

__global__ void __launch_bounds__(kThreads)
    MoeDispatchKernel(const int32_t* expert_ids, int64_t pairs, int experts,
                      int32_t* expert_offsets, int32_t* sorted_pairs) {
  extern __shared__ int shared_ints[];
  const DispatchShared sh = DispatchShared::Carve(shared_ints, experts);
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const unsigned lower_lanes = (1u << lane) - 1u;
  const int64_t segment = (pairs + kWarps - 1) / kWarps;
  const int64_t seg_begin = warp * segment < pairs ? warp * segment : pairs;
  const int64_t seg_end = seg_begin + segment < pairs ? seg_begin + segment : pairs;
  int* my_count = sh.count + warp * experts;

  for (int i = threadIdx.x; i < kWarps * experts; i += kThreads) sh.count[i] = 0;
  __syncthreads();

  // 1. count[warp][e] = #{p in the warp's segment : ids[p] == e}.
  for (int64_t base = seg_begin; base < seg_end; base += kWarpSize) {
    const int64_t p = base + lane;
    const int e = p < seg_end ? expert_ids[p] : -1;
    const unsigned peers = __match_any_sync(kFullMask, e);
    if (e >= 0 && lane == kWarpSize - 1 - __clz(peers)) my_count[e] += __popc(peers);
    __syncwarp();
  }
  __syncthreads();

  // 2. offsets_e = sum_{e' < e} count_e' (one thread: E <= 1024 adds), then per expert
  //    base[w][e] = offsets_e + sum_{w' < w} count[w'][e].
  if (threadIdx.x == 0) {
    int running = 0;
    for (int e = 0; e < experts; ++e) {
      sh.offsets[e] = running;
      for (int w = 0; w < kWarps; ++w) running += sh.count[w * experts + e];
    }
    sh.offsets[experts] = running;
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= experts; e += kThreads) {
    expert_offsets[e] = sh.offsets[e];
    if (e == experts) continue;
    int running = sh.offsets[e];
    for (int w = 0; w < kWarps; ++w) {
      const int c = sh.count[w * experts + e];
      sh.count[w * experts + e] = running;
      running += c;
    }
  }
  __syncthreads();

  // 3. sorted_pairs[base[warp][e] + lower lanes of the same expert] = p.
  for (int64_t base = seg_begin; base < seg_end; base += kWarpSize) {
    const int64_t p = base + lane;
    const int e = p < seg_end ? expert_ids[p] : -1;
    const unsigned peers = __match_any_sync(kFullMask, e);
    if (e >= 0) sorted_pairs[my_count[e] + __popc(peers & lower_lanes)] = static_cast<int32_t>(p);
    __syncwarp();
    if (e >= 0 && lane == kWarpSize - 1 - __clz(peers)) my_count[e] += __popc(peers);
    __syncwarp();
  }
}

}  // namespace

absl::Status MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k,
                         int64_t num_experts, int32_t* expert_offsets, int32_t* sorted_pairs,
                         cudaStream_t stream) {
  if (num_experts <= 0 || num_experts > kMoeMaxExperts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MoeDispatch: num_experts must be in [1, ", kMoeMaxExperts, "], got ", num_experts));
  }
  const int64_t pairs = tokens * top_k;
  if (pairs > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeDispatch: tokens * top_k must fit int32, got ", pairs));
  }
  const size_t shared_bytes = sizeof(int) * DispatchShared::Words(num_experts);
  MoeDispatchKernel<<<1, kThreads, shared_bytes, stream>>>(
      expert_ids, pairs, static_cast<int>(num_experts), expert_offsets, sorted_pairs);
  return LaunchStatus("MoeDispatchKernel");
}

}  // namespace mla::kernels::cuda
