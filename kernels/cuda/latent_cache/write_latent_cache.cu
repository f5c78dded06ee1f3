// WriteLatentCache on the GPU (twin of kernels/cpu/mla_attention.cc's), MODEL.md §3.3 step 3:
// the kv_a projection's row of each token, normalised, rotated and rounded into its cache slot.
//
//   cache[slots[t], 0:d_latent]          = bf16(w[j] * (kv[t, j] * inv_rms_t))      (c_t)
//   cache[slots[t], d_latent + 2i, +1]   = bf16(rope pair i of kv[t, d_latent:])    (k^R_t)
//   inv_rms_t = 1 / sqrt(sum_j kv[t, j]^2 / d_latent + eps)
//
// One fused kernel where the layer ran five ops (two strided copies, RmsNorm, ApplyRope, the
// write): one block of kThreads per token reads the token's kv row once and writes its 576
// bf16. The arithmetic is exactly that of RmsNormKernel (norm/rms_norm.cu: same thread count,
// same strided partial sums, the same block::Sum tree, the same expression) and of
// ApplyRopeKernel (rope/rope.cu: float32 angle, accurate cosf/sinf), so the cache holds the same
// bits as those kernels followed by the old write; against the CPU only RmsNorm's summation
// order differs (~1e-7 relative before the rounding to bf16).
// Rounding is to nearest even (__float2bfloat16_rn), the CPU's FloatToBf16. A negative slot (a
// padding row of a recorded decode step) is not written; only the token's own slot is touched.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;  // RmsNormKernel's: the same partial sums, so the same bits

__global__ void __launch_bounds__(kThreads)
    WriteLatentCacheKernel(LatentWrite in, bf16* cache, int64_t d_latent, int64_t d_rope) {
  const int64_t t = blockIdx.x;
  const int64_t slot = in.slots[t];
  if (slot < 0) return;  // the whole block: no barrier is skipped by part of it
  const int64_t d_cache = d_latent + d_rope;
  const float* row = in.kv + t * d_cache;
  bf16* dst = cache + slot * d_cache;
  // c = w * (x * inv_rms), as RmsNormKernel.
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < d_latent; j += kThreads) ss += row[j] * row[j];
  ss = block::Sum(ss);
  const float inv_rms = 1.0f / sqrtf(ss / static_cast<float>(d_latent) + in.eps);
  for (int64_t j = threadIdx.x; j < d_latent; j += kThreads) {
    dst[j] = ToBf16(in.norm_weight[j] * (row[j] * inv_rms));
  }
  // k^R: pair i turned by positions[t] * inv_freq[i], as ApplyRopeKernel.
  const float position = static_cast<float>(in.positions[t]);
  for (int64_t i = threadIdx.x; i < d_rope / 2; i += kThreads) {
    const float angle = position * in.inv_freq[i];
    const float c = cosf(angle) * in.cos_sin_scale;
    const float s = sinf(angle) * in.cos_sin_scale;
    const float x0 = row[d_latent + 2 * i];
    const float x1 = row[d_latent + 2 * i + 1];
    dst[d_latent + 2 * i] = ToBf16(x0 * c - x1 * s);
    dst[d_latent + 2 * i + 1] = ToBf16(x0 * s + x1 * c);
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
