// ApplyRope on the GPU (twin of kernels/cpu/rope.cc), MODEL.md §4.4: DeepSeek's interleaved
// (GPT-J) pairs, in place. For the vector v of (row r, head h) at x + r*row_stride +
// h*head_stride and each pair i < rope_dim / 2:
//   a = float(positions[r]) * inv_freq[i]           one float32 multiply, as on the CPU
//   c = cosf(a) * cos_sin_scale, s = sinf(a) * cos_sin_scale
//   v[2i] <- v[2i]*c - v[2i+1]*s,  v[2i+1] <- v[2i]*s + v[2i+1]*c.
// cosf/sinf, not __cosf/__sinf: positions reach 1e5 and more, where the fast intrinsics lose all
// accuracy; the accurate versions (2 ulp, full range reduction) agree with the CPU's libm to
// ~1e-7. One thread per (row, head, pair): each recomputes its cos/sin (cheap next to the
// memory traffic) instead of staging a per-row table.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/rope/rope.cuh"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    ApplyRopeKernel(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                    int64_t head_stride, const int32_t* positions, const float* inv_freq,
                    int64_t pairs, float cos_sin_scale) {
  const int64_t total = rows * heads * pairs;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t i = idx % pairs;
    const int64_t h = (idx / pairs) % heads;
    const int64_t r = idx / (pairs * heads);
    // a = p * w_i;  (v0, v1) <- scale * (v0 cos a - v1 sin a, v0 sin a + v1 cos a)
    const float angle = static_cast<float>(positions[r]) * inv_freq[i];
    float* v = x + r * row_stride + h * head_stride + 2 * i;
    const float2 turned = thread::RotatePair(v[0], v[1], angle, cos_sin_scale);
    v[0] = turned.x;
    v[1] = turned.y;
  }
}

}  // namespace

absl::Status ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                       int64_t head_stride, const int32_t* positions, const float* inv_freq,
                       int64_t rope_dim, float cos_sin_scale, cudaStream_t stream) {
  const int64_t pairs = rope_dim / 2;
  const int64_t total = rows * heads * pairs;
  if (total == 0) return absl::OkStatus();
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20));
  ApplyRopeKernel<<<grid, kThreads, 0, stream>>>(x, rows, heads, row_stride, head_stride,
                                                 positions, inv_freq, pairs, cos_sin_scale);
  return LaunchStatus("ApplyRopeKernel");
}

}  // namespace mla::kernels::cuda
