// The device half of ApplyRope (rope/rope.cu), shared with the kernels that fuse it
// (latent_cache/write_latent_cache.cu), so that they compute the same bits.
#ifndef MLASERVE_KERNELS_CUDA_ROPE_ROPE_CUH_
#define MLASERVE_KERNELS_CUDA_ROPE_ROPE_CUH_

#include <cuda_runtime.h>

namespace mla::kernels::cuda::thread {

// One interleaved pair turned by `angle` (position * inv_freq in float32), both outputs scaled:
// (c, s) = scale * (cos a, sin a); (x0, x1) -> (x0 c - x1 s, x0 s + x1 c). cosf/sinf, not the
// fast intrinsics: positions reach 1e5 and more, where __cosf/__sinf lose all accuracy.
__device__ __forceinline__ float2 RotatePair(float x0, float x1, float angle,
                                             float cos_sin_scale) {
  const float c = cosf(angle) * cos_sin_scale;
  const float s = sinf(angle) * cos_sin_scale;
  return make_float2(x0 * c - x1 * s, x0 * s + x1 * c);
}

}  // namespace mla::kernels::cuda::thread

#endif  // MLASERVE_KERNELS_CUDA_ROPE_ROPE_CUH_
