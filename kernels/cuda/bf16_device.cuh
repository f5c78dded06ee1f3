// Device-side conversions between float and mla::bf16 (kernels/bf16.h's storage type), matching
// the host functions bit for bit on every non-NaN value: widening is exact (a 16-bit shift) and
// narrowing is __float2bfloat16_rn, round to nearest even like FloatToBf16. (A NaN stays a NaN;
// its payload may differ.) mla::bf16 and __nv_bfloat16 have the same size and bits, so device
// code reinterprets one as the other.
#ifndef MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_
#define MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/bf16.h"

namespace mla::kernels::cuda {

static_assert(sizeof(__nv_bfloat16) == sizeof(bf16));

__device__ __forceinline__ float ToFloat(bf16 v) {
  return __uint_as_float(static_cast<unsigned>(v.bits) << 16);
}

__device__ __forceinline__ bf16 ToBf16(float f) {
  return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
}

// Two floats rounded to bf16 (nearest even) in one 32-bit register, `lo` in the low half: a bf16
// pair as tensor-core operand fragments hold them (the lower row / column index low).
__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return static_cast<uint32_t>(__bfloat16_as_ushort(v.x)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(v.y)) << 16);
}

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_BF16_DEVICE_CUH_
