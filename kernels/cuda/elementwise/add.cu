// Add on the GPU: the residual update y += x (e.g. h += FFN output).
//
//   y[i] = y[i] + x[i],  i < n.
//
// x, y: [n] float32; one float32 add per element, so exactly the host's `y[i] += x[i]`. y may
// alias x. No CPU twin in kernels/ops.h (the CPU backend adds in a loop). A grid-stride loop,
// one element per thread per step (memory-bound: 12 bytes per element).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__global__ void __launch_bounds__(kThreads) AddKernel(const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    y[i] = __fadd_rn(y[i], x[i]);  // y += x, rounded as on the host (no contraction)
  }
}

}  // namespace

absl::Status Add(const float* x, int64_t n, float* y, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  AddKernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads, 0,
              stream>>>(x, n, y);
  return LaunchStatus("AddKernel");
}

}  // namespace mla::kernels::cuda
