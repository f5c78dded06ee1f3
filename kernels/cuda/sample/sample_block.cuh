// Block-wide building blocks of the CUDA sampler (sample.cu), for blocks of kThreads threads
// (every function below is called by all threads of the block, or by all 32 lanes of a warp where
// its name begins with Warp). Reductions and scans have a fixed shape, so their floating-point
// results never vary between runs.
//
//   BlockReduce / BlockArgmax   every thread gets the reduction (argmax: lowest id on ties)
//   BlockExclusiveSum           the sum over the threads before this one (and the block total)
//   ForEachLogit                this thread's share of a row, order-free (max, min, argmax)
//   BlockPartition              a stable partition of a row into kGroups groups, ranks by id
//   WarpFirstTrue               the first index of a monotone predicate, 32 probes a step
//   BlockSortDescending         a stable sort of up to kBlockSortItems (key, id) in shared memory
#ifndef MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_BLOCK_CUH_
#define MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_BLOCK_CUH_

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <cub/block/block_radix_sort.cuh>

#include "kernels/cuda/block_reduce.cuh"

namespace mla::kernels::cuda::sample_block {

inline constexpr int kWarpSize = warp::kSize;
inline constexpr int kThreads = 512;
inline constexpr int kWarps = kThreads / kWarpSize;
using warp::kFullMask;
inline constexpr int kFloatsPerLoad = 4;   // float4 loads where a row is 16-byte aligned
inline constexpr int kTileRounds = 8;      // BlockPartition: elements per thread per tile
inline constexpr int kGroups = 16;         // BlockPartition's groups: CUB segments per row
inline constexpr int kSortItems = 8;       // BlockSortDescending: items per thread
inline constexpr int kBlockSortItems = kThreads * kSortItems;
static_assert(kWarps <= kWarpSize, "one warp reduces the warps' partials");
static_assert(kGroups <= kThreads, "a thread per group writes its segment");

// A value and its id; Better(a, b): a's value is larger, or equal with a lower id.
struct Candidate {
  float value;
  int id;
};
__device__ __forceinline__ bool Better(const Candidate& a, const Candidate& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

__device__ __forceinline__ int64_t Min64(int64_t a, int64_t b) { return a < b ? a : b; }

// v from the lane `offset` away (lane ^ offset); a Candidate moves both its fields.
template <typename T>
__device__ __forceinline__ T ShuffleXor(T v, int offset) {
  return __shfl_xor_sync(kFullMask, v, offset);
}
__device__ __forceinline__ Candidate ShuffleXor(const Candidate& c, int offset) {
  return Candidate{__shfl_xor_sync(kFullMask, c.value, offset),
                   __shfl_xor_sync(kFullMask, c.id, offset)};
}

// op over the warp's 32 values by butterfly shuffles; every lane gets it (all 32 lanes call).
template <typename T, typename Op>
__device__ __forceinline__ T WarpReduce(T v, Op op) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, ShuffleXor(v, offset));
  return v;
}

// Block-wide reductions (all threads call; every thread gets the result). WarpReduce within a
// warp, then warp 0 over the warps' results through shared memory: a fixed shape. `identity`
// fills warp 0's lanes past the number of warps.
template <typename T, typename Op>
__device__ T BlockReduce(T v, Op op, std::type_identity_t<T> identity) {
  __shared__ T partial[kWarps];
  __shared__ T result;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = WarpReduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = WarpReduce(lane < kWarps ? partial[lane] : identity, op);
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

// The Better of two candidates (the first on a tie of both fields).
struct ArgmaxOp {
  __device__ Candidate operator()(const Candidate& mine, const Candidate& other) const {
    return Better(other, mine) ? other : mine;
  }
};

__device__ inline Candidate BlockArgmax(Candidate c) {
  return BlockReduce(c, ArgmaxOp{}, Candidate{-INFINITY, INT_MAX});
}

// The sum of v over lanes 0 .. lane of the warp (all 32 lanes call).
template <typename T>
__device__ __forceinline__ T WarpInclusiveSum(T v, int lane) {
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const T up = __shfl_up_sync(kFullMask, v, offset);
    if (lane >= offset) v += up;
  }
  return v;
}

// The sum of v over the lanes before this one in the warp (all 32 lanes call).
__device__ __forceinline__ int WarpExclusiveSum(int v, int lane) {
  return WarpInclusiveSum(v, lane) - v;
}

// The sum of the values of the threads before this one (thread order), and in *total (when not
// null) the sum over the block. Exact for integers.
template <typename T>
__device__ T BlockExclusiveSum(T v, T* total = nullptr) {
  __shared__ T warp_totals[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const T inclusive = WarpInclusiveSum(v, lane);
  if (lane == kWarpSize - 1) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const T total = WarpInclusiveSum(lane < kWarps ? warp_totals[lane] : T{0}, lane);
    if (lane < kWarps) warp_totals[lane] = total;  // inclusive over warps
  }
  __syncthreads();
  const T before_lane = __shfl_up_sync(kFullMask, inclusive, 1);  // lanes < this one
  const T before_warp = warp > 0 ? warp_totals[warp - 1] : T{0};
  const T result = lane > 0 ? before_warp + before_lane : before_warp;
  if (total != nullptr) *total = warp_totals[kWarps - 1];
  __syncthreads();  // warp_totals may be reused by a later call
  return result;
}

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MinOp {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};
struct MaxFloatOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinFloatOp {
  __device__ float operator()(float a, float b) const { return fminf(a, b); }
};

// Calls f(i, row[i]) for this thread's share of row [0, n), in no fixed order (for max, min
// and argmax only): 16-byte loads where the row is 16-byte aligned, four in flight per thread.
template <typename F>
__device__ __forceinline__ void ForEachLogit(const float* row, int64_t n, F f) {
  int64_t done = 0;
  if (reinterpret_cast<uintptr_t>(row) % sizeof(float4) == 0) {
    const float4* quads = reinterpret_cast<const float4*>(row);
    const int64_t num_quads = n / kFloatsPerLoad;
#pragma unroll 4
    for (int64_t q = threadIdx.x; q < num_quads; q += kThreads) {
      const float4 v = __ldg(quads + q);
      const int64_t i = q * kFloatsPerLoad;
      f(i, v.x);
      f(i + 1, v.y);
      f(i + 2, v.z);
      f(i + 3, v.w);
    }
    done = num_quads * kFloatsPerLoad;
  }
  for (int64_t i = done + threadIdx.x; i < n; i += kThreads) f(i, row[i]);
}

// A stable partition of row [0, n) by the whole block (all threads call): group = classify(row[i])
// in [0, kGroups), or kGroups for none; visit(i, row[i], group, rank) for each i in a group,
// rank = the number of i' < i in the same group. Tiles of kTileRounds * kThreads elements,
// element tile + r * kThreads + thread (coalesced; ascending id is (round, warp, lane) order):
// per tile, each warp's members of each group per round (match_any), an exclusive scan of those
// counts per group over (round, warp) (warp w scans groups w, w + kWarps, ...), then the visits.
template <typename Classify, typename Visit>
__device__ void BlockPartition(const float* row, int64_t n, Classify classify, Visit visit) {
  constexpr int kSlots = kTileRounds * kWarps;  // (round, warp) pairs of a tile, in id order
  constexpr int kSlotsPerLane = kSlots / kWarpSize;
  constexpr int kGroupsPerWarp = kGroups / kWarps;
  static_assert(kGroups >= kWarps && kGroups % kWarps == 0, "every warp scans whole groups");
  static_assert(kSlots % kWarpSize == 0, "each lane scans whole slots");
  __shared__ int slot_counts[kGroups][kSlots];  // members per slot, then the exclusive scan
  __shared__ int64_t filled[kGroups];           // members of each group in earlier tiles
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const unsigned lanes_before = (1u << lane) - 1u;
  for (int g = threadIdx.x; g < kGroups; g += kThreads) filled[g] = 0;
  for (int64_t tile = 0; tile < n; tile += int64_t{kTileRounds} * kThreads) {
    for (int k = threadIdx.x; k < kGroups * kSlots; k += kThreads) (&slot_counts[0][0])[k] = 0;
    float value[kTileRounds];
#pragma unroll
    for (int r = 0; r < kTileRounds; ++r) {
      const int64_t i = tile + r * kThreads + threadIdx.x;
      value[r] = i < n ? row[i] : 0.0f;
    }
    __syncthreads();  // zeroed counts; `filled` updated by the last tile
    int group[kTileRounds];
    unsigned peers[kTileRounds];
#pragma unroll
    for (int r = 0; r < kTileRounds; ++r) {
      const int64_t i = tile + r * kThreads + threadIdx.x;
      group[r] = i < n ? classify(value[r]) : kGroups;
      peers[r] = __match_any_sync(kFullMask, group[r]);
      if (group[r] < kGroups && lane == __ffs(peers[r]) - 1) {
        slot_counts[group[r]][r * kWarps + warp] = __popc(peers[r]);
      }
    }
    __syncthreads();
    // Warp w scans groups w, w + kWarps, ...: slot_counts[g][*] -> exclusive prefix sums.
    int tile_total[kGroupsPerWarp];
#pragma unroll
    for (int k = 0; k < kGroupsPerWarp; ++k) {
      int* counts = slot_counts[warp + k * kWarps];
      int local[kSlotsPerLane];
      int lane_sum = 0;
#pragma unroll
      for (int q = 0; q < kSlotsPerLane; ++q) {
        local[q] = lane_sum;
        lane_sum += counts[lane * kSlotsPerLane + q];
      }
      const int lane_before = WarpExclusiveSum(lane_sum, lane);
#pragma unroll
      for (int q = 0; q < kSlotsPerLane; ++q) {
        counts[lane * kSlotsPerLane + q] = lane_before + local[q];
      }
      tile_total[k] = __shfl_sync(kFullMask, lane_before + lane_sum, kWarpSize - 1);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kTileRounds; ++r) {
      if (group[r] < kGroups) {
        const int g = group[r];
        const int64_t rank =
            filled[g] + slot_counts[g][r * kWarps + warp] + __popc(peers[r] & lanes_before);
        visit(tile + r * kThreads + threadIdx.x, value[r], g, rank);
      }
    }
    __syncthreads();  // all reads of this tile's counts and of `filled` are done
    if (lane == 0) {
#pragma unroll
      for (int k = 0; k < kGroupsPerWarp; ++k) filled[warp + k * kWarps] += tile_total[k];
    }
  }
  __syncthreads();
}

// The first i in [lo, hi) with pred(i), or hi if none; pred must be false, then true, along
// [lo, hi). All 32 lanes of a warp call it with the same arguments: 32 probes per step.
template <typename Pred>
__device__ int64_t WarpFirstTrue(int64_t lo, int64_t hi, Pred pred) {
  const int lane = threadIdx.x % kWarpSize;
  int64_t found = hi;
  while (lo < hi) {
    const int64_t step = (hi - lo + kWarpSize - 1) / kWarpSize;
    const unsigned ballot = __ballot_sync(kFullMask, pred(Min64(lo + (lane + 1) * step, hi) - 1));
    if (ballot == 0) break;
    const int first_lane = __ffs(ballot) - 1;  // the first true lies in this lane's slice
    found = Min64(lo + (first_lane + 1) * step, hi) - 1;
    lo += first_lane * step;
    hi = found;
  }
  return found;
}

// Sorts keys[0, count) descending with their ids, stably, count <= kBlockSortItems (all threads
// call). Padding sorts last: -NaN with all bits set is below every other float in CUB's order.
__device__ inline void BlockSortDescending(float* keys, int32_t* ids, int64_t count) {
  using BlockSort = cub::BlockRadixSort<float, kThreads, kSortItems, int32_t>;
  __shared__ typename BlockSort::TempStorage storage;
  const float padding = __uint_as_float(0xffffffffu);
  float k[kSortItems];
  int32_t v[kSortItems];
#pragma unroll
  for (int q = 0; q < kSortItems; ++q) {
    const int64_t j = int64_t{threadIdx.x} * kSortItems + q;
    k[q] = j < count ? keys[j] : padding;
    v[q] = j < count ? ids[j] : 0;
  }
  BlockSort(storage).SortDescending(k, v);  // blocked: thread t holds positions t * kSortItems..
#pragma unroll
  for (int q = 0; q < kSortItems; ++q) {
    const int64_t j = int64_t{threadIdx.x} * kSortItems + q;
    if (j < count) {
      keys[j] = k[q];
      ids[j] = v[q];
    }
  }
  __syncthreads();
}

}  // namespace mla::kernels::cuda::sample_block

#endif  // MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_BLOCK_CUH_
