// GatherRows on the GPU: copies rows of a float matrix by index, the MoE's way of collecting the
// tokens routed to one expert (pair index / top_k = token) or the last row of each sequence
// (divisor 1).
//
//   out[j, c] = x[index[j] / divisor, c],  j < count, c < dim.
//
// x: [*, dim] float32, index: [count] int32 (index[j] / divisor must be a row of x), out:
// [count, dim] float32, no aliasing. No CPU twin in kernels/ops.h (the CPU backend copies rows in
// a loop). A copy, so exact. One block per output row (grid-stride over rows), threads over the
// row's values; 16-byte loads and stores when dim % 4 == 0 and both bases are 16-byte aligned.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 1 << 16;

// T = float or float4; dim counted in T.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    GatherRowsKernel(const T* x, const int32_t* index, int64_t count, int64_t divisor,
                     int64_t dim, T* out) {
  for (int64_t j = blockIdx.x; j < count; j += gridDim.x) {
    const T* src = x + (static_cast<int64_t>(index[j]) / divisor) * dim;  // row index[j] / divisor
    T* dst = out + j * dim;
    for (int64_t c = threadIdx.x; c < dim; c += kThreads) dst[c] = src[c];
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

absl::Status GatherRows(const float* x, const int32_t* index, int64_t count, int64_t divisor,
                        int64_t dim, float* out, cudaStream_t stream) {
  if (divisor <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GatherRows: divisor must be positive, got ", divisor));
  }
  if (count == 0 || dim == 0) return absl::OkStatus();
  const unsigned blocks = static_cast<unsigned>(count < kMaxBlocks ? count : kMaxBlocks);
  if (dim % 4 == 0 && Aligned16(x) && Aligned16(out)) {
    GatherRowsKernel<float4><<<blocks, kThreads, 0, stream>>>(
        reinterpret_cast<const float4*>(x), index, count, divisor, dim / 4,
        reinterpret_cast<float4*>(out));
  } else {
    GatherRowsKernel<float><<<blocks, kThreads, 0, stream>>>(x, index, count, divisor, dim, out);
  }
  return LaunchStatus("GatherRowsKernel");
}

}  // namespace mla::kernels::cuda
