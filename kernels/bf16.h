// bf16: the 16-bit brain float used for weights and the latent cache.
//
// Storage only: arithmetic happens in float. FloatToBf16 rounds to nearest even (NaN stays NaN),
// which is what PyTorch's .to(torch.bfloat16) and CUDA's __float2bfloat16 do, so CPU-made and
// GPU-made bf16 values agree bit for bit. Header-only; usable from host code and tests.
#ifndef MLASERVE_KERNELS_BF16_H_
#define MLASERVE_KERNELS_BF16_H_

#include <cstdint>
#include <cstring>

namespace mla {

struct bf16 {
  uint16_t bits = 0;
};
static_assert(sizeof(bf16) == 2);

inline float Bf16ToFloat(bf16 v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline bf16 FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // quiet NaN
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// Rounds a float to the nearest bf16 value and back.
inline float RoundToBf16(float f) { return Bf16ToFloat(FloatToBf16(f)); }

}  // namespace mla

#endif  // MLASERVE_KERNELS_BF16_H_
