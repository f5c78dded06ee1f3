// SiluMul on the GPU (twin of kernels/cpu/swiglu.cc): SwiGLU's elementwise part, MODEL.md §5.1.
//
//   out[i] = silu(gate[i]) * up[i],  silu(g) = g / (1 + exp(-g)),  i < n.
//
// gate, up, out: [n] float32; float32 math in the CPU's order, with the accurate expf (2 ulp),
// not __expf. For g << 0, expf(-g) = +inf and silu gives -0, the correct limit. A grid-stride
// loop, one element per thread per step (memory-bound: 12 bytes per element).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__global__ void __launch_bounds__(kThreads)
    SiluMulKernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];  // silu(g) * up
  }
}

}  // namespace

absl::Status SiluMul(const float* gate, const float* up, int64_t n, float* out,
                     cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  SiluMulKernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads, 0,
                  stream>>>(gate, up, n, out);
  return LaunchStatus("SiluMulKernel");
}

}  // namespace mla::kernels::cuda
