// WriteLatentCache on the GPU (twin of kernels/cpu/mla_attention.cc's), MODEL.md §3.3 step 3.
//
//   cache[slots[t], 0:d_latent]              = bf16(latent[t, :])   (normalised latent c_t)
//   cache[slots[t], d_latent:d_latent+d_rope] = bf16(k_rope[t, :])  (rotated rope key k^R_t)
//
// Cache: [num_blocks, kBlockSize, d_latent + d_rope] bf16, slot = block * kBlockSize + offset.
// latent: [tokens, d_latent], k_rope: [tokens, d_rope] float32, slots: [tokens] int64, distinct;
// a negative slot (a padding row of a captured decode step) is not written.
// Rounding is to nearest even (__float2bfloat16_rn), the same bits as the CPU's FloatToBf16.
// One block per token; only the token's own slot is written.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    WriteLatentCacheKernel(const float* latent, const float* k_rope, const int64_t* slots,
                           bf16* cache, int64_t d_latent, int64_t d_rope) {
  const int64_t t = blockIdx.x;
  if (slots[t] < 0) return;
  bf16* dst = cache + slots[t] * (d_latent + d_rope);
  for (int64_t c = threadIdx.x; c < d_latent; c += kThreads) {
    dst[c] = ToBf16(latent[t * d_latent + c]);
  }
  for (int64_t r = threadIdx.x; r < d_rope; r += kThreads) {
    dst[d_latent + r] = ToBf16(k_rope[t * d_rope + r]);
  }
}

}  // namespace

absl::Status WriteLatentCache(const float* latent, const float* k_rope, const int64_t* slots,
                              int64_t tokens, const LatentCache& cache, cudaStream_t stream) {
  if (tokens == 0) return absl::OkStatus();
  WriteLatentCacheKernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(
      latent, k_rope, slots, cache.data, cache.d_latent, cache.d_rope);
  return LaunchStatus("WriteLatentCacheKernel");
}

}  // namespace mla::kernels::cuda
