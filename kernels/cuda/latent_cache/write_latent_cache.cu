// WriteLatentCache on the GPU (twin of kernels/cpu/mla_attention.cc's), MODEL.md §3.3 step 3:
// the kv_a projection's row of each token, normalised, rotated and rounded into its cache slot.
//
//   cache[slots[t], 0:d_latent]          = bf16(w[j] * (kv[t, j] * inv_rms_t))      (c_t)
//   cache[slots[t], d_latent + 2i, +1]   = bf16(rope pair i of kv[t, d_latent:])    (k^R_t)
//   inv_rms_t = 1 / sqrt(sum_j kv[t, j]^2 / d_latent + eps)
//
// One fused kernel where the layer ran five ops (two strided copies, RmsNorm, ApplyRope, the
// write): one block of kThreads per token reads the token's kv row once and writes its 576
// bf16. The arithmetic is RmsNormKernel's and ApplyRopeKernel's own device code
// (block::InverseRms in norm/rms_norm.cuh at the same thread count, thread::RotatePair in
// rope/rope.cuh), so the cache holds the same bits as those kernels followed by the old write; against the CPU only RmsNorm's summation
// order differs (~1e-7 relative before the rounding to bf16).
// Rounding is to nearest even (__float2bfloat16_rn), the CPU's FloatToBf16. A negative slot (a
// padding row of a recorded decode step) is not written; only the token's own slot is touched.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/norm/rms_norm.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/rope/rope.cuh"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = kRmsNormThreads;  // RmsNorm's partial sums, so RmsNorm's bits

__global__ void __launch_bounds__(kThreads)
    WriteLatentCacheKernel(LatentWrite in, bf16* cache, int64_t d_latent, int64_t d_rope) {
  const int64_t t = blockIdx.x;
  const int64_t slot = in.slots[t];
  if (slot < 0) return;  // the whole block: no barrier is skipped by part of it
  const int64_t d_cache = d_latent + d_rope;
  const float* row = in.kv + t * d_cache;
  bf16* dst = cache + slot * d_cache;
  // c = w * (x * inv_rms), as RmsNormKernel.
  const float inv_rms = block::InverseRms<kThreads>(row, d_latent, in.eps);
  for (int64_t j = threadIdx.x; j < d_latent; j += kThreads) {
    dst[j] = ToBf16(in.norm_weight[j] * (row[j] * inv_rms));
  }
  // k^R: pair i turned by positions[t] * inv_freq[i], as ApplyRopeKernel.
  const float position = static_cast<float>(in.positions[t]);
  for (int64_t i = threadIdx.x; i < d_rope / 2; i += kThreads) {
    const float2 turned = thread::RotatePair(row[d_latent + 2 * i], row[d_latent + 2 * i + 1],
                                             position * in.inv_freq[i], in.cos_sin_scale);
    dst[d_latent + 2 * i] = ToBf16(turned.x);
    dst[d_latent + 2 * i + 1] = ToBf16(turned.y);
  }
}

}  // namespace

absl::Status WriteLatentCache(const LatentWrite& in, const LatentCache& cache,
                              cudaStream_t stream) {
  if (in.tokens == 0) return absl::OkStatus();
  WriteLatentCacheKernel<<<static_cast<unsigned>(in.tokens), kThreads, 0, stream>>>(
      in, cache.data, cache.d_latent, cache.d_rope);
  return LaunchStatus("WriteLatentCacheKernel");
}

}  // namespace mla::kernels::cuda
