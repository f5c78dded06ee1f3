// Device-side conversions between float and mla::bf16 (kernels/bf16.h's storage type), matching
// the host functions bit for bit on every non-NaN value: widening is exact (a 16-bit shift) and
// narrowing is __float2bfloat16_rn, round to nearest even like FloatToBf16. (A NaN stays a NaN;
// its payload may differ.) mla::bf16 and __nv_bfloat16 have the same size and bits, so device
// code reinterprets one as the other.
#ifndef MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_
#define MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_

#include <cuda_bf16.h>

#include "kernels/bf16.h"

namespace mla::kernels::cuda {

static_assert(sizeof(__nv_bfloat16) == sizeof(bf16));

__device__ __forceinline__ float ToFloat(bf16 v) {
  return __uint_as_float(static_cast<unsigned>(v.bits) << 16);
}

__device__ __forceinline__ bf16 ToBf16(float f) {
  return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
}

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_
