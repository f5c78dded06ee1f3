// Which sequence of a ragged batch owns an item (a gathered context row, a query tile), from the
// per-sequence start offsets that PrefixKernel writes into the workspace (mla_prefill.cu).
// Device-only, called by any thread.
#ifndef MLASERVE_KERNELS_CUDA_MLA_PREFILL_RAGGED_CUH_
#define MLASERVE_KERNELS_CUDA_MLA_PREFILL_RAGGED_CUH_

#include <cstdint>

namespace mla::kernels::cuda::mla_prefill {

// The largest s < num_seqs with start[s] <= x (start non-decreasing, start[0] = 0 <= x): the
// sequence that owns item x, skipping sequences that own none. Binary search, log2(num_seqs) steps.
__device__ __forceinline__ int64_t OwnerOf(const int32_t* start, int64_t num_seqs, int64_t x) {
  int64_t lo = 0;
  int64_t hi = num_seqs;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (start[mid] <= x) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace mla::kernels::cuda::mla_prefill

#endif  // MLASERVE_KERNELS_CUDA_MLA_PREFILL_RAGGED_CUH_
