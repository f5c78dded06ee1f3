// CastToBf16: y[i] = bf16(x[i]), round to nearest even, i < n; x float32, y bf16.
// The float32 activations' way into Linear (linear.h). Same bits as the host's FloatToBf16 for
// every non-NaN input. Grid-stride loop; memory-bound (6 bytes per element).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/linear/linear.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__global__ void __launch_bounds__(kThreads) CastToBf16Kernel(const float* x, int64_t n, bf16* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    y[i] = ToBf16(x[i]);
  }
}

}  // namespace

absl::Status CastToBf16(const float* x, int64_t n, bf16* y, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  CastToBf16Kernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads,
                     0, stream>>>(x, n, y);
  return LaunchStatus("CastToBf16Kernel");
}

}  // namespace mla::kernels::cuda
