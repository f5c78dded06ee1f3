// The device half of RmsNorm (norm/rms_norm.cu), shared with the kernels that fuse it
// (latent_cache/write_latent_cache.cu), so that they compute the same bits.
#ifndef MLASERVE_KERNELS_CUDA_NORM_RMS_NORM_CUH_
#define MLASERVE_KERNELS_CUDA_NORM_RMS_NORM_CUH_

#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"

namespace mla::kernels::cuda {

// Threads per row of RmsNorm and of the kernels fusing it: one count, so one summation order.
inline constexpr int kRmsNormThreads = 256;

namespace block {

// 1 / sqrt(sum_j row[j]^2 / dim + eps) for the row of this thread block (every thread gets it):
// thread t sums row[t], row[t + kThreads], ... in float32, then block::Sum. All kThreads
// (= blockDim.x) threads call it.
template <int kThreads>
__device__ __forceinline__ float InverseRms(const float* row, int64_t dim, float eps) {
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) ss += row[j] * row[j];
  ss = Sum(ss);
  return 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
}

}  // namespace block
}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_NORM_RMS_NORM_CUH_
