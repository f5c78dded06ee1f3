// CastToBf16: y[i] = bf16(x[i]), round to nearest even, i < n; x float32, y bf16.
// The float32 activations' way into Linear (linear.h). Same bits as the host's FloatToBf16 for
// every non-NaN input. WidenBf16: the exact way back, for LinearF32's weights. Grid-stride
// loops; memory-bound (6 bytes per element).
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

__device__ __forceinline__ bf16 Convert(float x, bf16*) { return ToBf16(x); }
__device__ __forceinline__ float Convert(bf16 x, float*) { return ToFloat(x); }

template <typename In, typename Out>
__global__ void __launch_bounds__(kThreads) CastKernel(const In* x, int64_t n, Out* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    y[i] = Convert(x[i], y);
  }
}

template <typename In, typename Out>
absl::Status Cast(const In* x, int64_t n, Out* y, cudaStream_t stream, const char* what) {
  if (n == 0) return absl::OkStatus();
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  CastKernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads, 0,
               stream>>>(x, n, y);
  return LaunchStatus(what);
}

}  // namespace

absl::Status CastToBf16(const float* x, int64_t n, bf16* y, cudaStream_t stream) {
  return Cast(x, n, y, stream, "CastToBf16 kernel");
}

absl::Status WidenBf16(const bf16* x, int64_t n, float* y, cudaStream_t stream) {
  return Cast(x, n, y, stream, "WidenBf16 kernel");
}

}  // namespace mla::kernels::cuda
