// RmsNorm and AddRmsNorm on the GPU (twins of kernels/cpu/rms_norm.cc), MODEL.md §2.
//
//   RmsNorm:    y[r, j] = weight[j] * (x[r, j] * inv_rms[r]),
//               inv_rms[r] = 1 / sqrt(sum_j x[r, j]^2 / dim + eps)
//   AddRmsNorm: residual[r, j] += delta[r, j]; then y[r] = RmsNorm(residual[r]).
//
// Shapes: x, y, residual, delta [rows, dim] float32; weight [dim] float32. One thread block per
// row (kThreads threads striding over the row, coalesced); the sum of squares is a block-wide
// tree reduction in float32, so it differs from the CPU's sequential sum only by rounding
// (~1e-7 relative). sqrtf and the division are IEEE-exact as on the CPU (no fast math).
// Aliasing (y == x, y == delta, y == residual) is safe: each element is read and then written by
// the same thread, and a row's statistic is complete (block::Sum's barrier) before any write.
// Why no __restrict__: the aliasing above is allowed.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/norm/rms_norm.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = kRmsNormThreads;  // per row; rows are 512 .. 7168 wide in V3

__global__ void __launch_bounds__(kThreads) RmsNormKernel(const float* x, const float* weight,
                                                          int64_t dim, float eps, float* y) {
  const float* x_row = x + blockIdx.x * dim;
  float* y_row = y + blockIdx.x * dim;
  // y_j = w_j * (x_j * inv_rms)
  const float inv_rms = block::InverseRms<kThreads>(x_row, dim, eps);
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) y_row[j] = weight[j] * (x_row[j] * inv_rms);
}

__global__ void __launch_bounds__(kThreads)
    AddRmsNormKernel(float* residual, const float* delta, const float* weight, int64_t dim,
                     float eps, float* y) {
  float* res_row = residual + blockIdx.x * dim;
  const float* delta_row = delta + blockIdx.x * dim;
  float* y_row = y + blockIdx.x * dim;
  // residual_j += delta_j;  ss = sum_j residual_j^2
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
    const float r = res_row[j] + delta_row[j];
    res_row[j] = r;
    ss += r * r;
  }
  ss = block::Sum(ss);
  // y_j = w_j * (residual_j * inv_rms)
  const float inv_rms = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
    y_row[j] = weight[j] * (res_row[j] * inv_rms);
  }
}

}  // namespace

absl::Status RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                     float* y, cudaStream_t stream) {
  if (rows == 0) return absl::OkStatus();
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, dim, eps, y);
  return LaunchStatus("RmsNormKernel");
}

absl::Status AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows,
                        int64_t dim, float eps, float* y, cudaStream_t stream) {
  if (rows == 0) return absl::OkStatus();
  AddRmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(residual, delta, weight,
                                                                         dim, eps, y);
  return LaunchStatus("AddRmsNormKernel");
}

}  // namespace mla::kernels::cuda
