// The sampler's uniform number for (seed, step): a counter-based hash, no state. The one copy of
// this function (STYLE.md I2): cpu::SampleUniform / cpu::Sample and the CUDA sampler both call
// it, so the CPU and the GPU draw bit-identical numbers for the same request and step.
//
//   M(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//         z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)   (uint64, wrapping)
//   h = M(M(seed) ^ step);  u = (h >> 11) * 2^-53, a double in [0, 1) with 53 random bits.
//
// Integer arithmetic and one exact scaling by a power of two: the same bits on every compiler
// and device. Header-only; __host__ __device__ under nvcc; any thread may call it.
#ifndef MLASERVE_KERNELS_SAMPLE_UNIFORM_H_
#define MLASERVE_KERNELS_SAMPLE_UNIFORM_H_

#include <cstdint>

#include "kernels/host_device.h"

namespace mla::kernels {

// SplitMix64's output function M (Steele, Lea, Flood 2014).
MLA_HOST_DEVICE inline uint64_t SplitMix64(uint64_t z) {
  constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;
  constexpr uint64_t kMixMultiplier1 = 0xBF58476D1CE4E5B9ull;
  constexpr uint64_t kMixMultiplier2 = 0x94D049BB133111EBull;
  constexpr int kMixShift1 = 30;
  constexpr int kMixShift2 = 27;
  constexpr int kMixShift3 = 31;
  z += kGoldenGamma;
  z = (z ^ (z >> kMixShift1)) * kMixMultiplier1;
  z = (z ^ (z >> kMixShift2)) * kMixMultiplier2;
  return z ^ (z >> kMixShift3);
}

// u = (M(M(seed) ^ step) >> 11) * 2^-53, in [0, 1).
MLA_HOST_DEVICE inline double SampleUniformOf(uint64_t seed, uint64_t step) {
  constexpr int kMantissaBits = 53;
  constexpr int kWordBits = 64;
  constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;  // 2^-53, exact
  static_assert(kWordBits - kMantissaBits == 11);
  const uint64_t h = SplitMix64(SplitMix64(seed) ^ step);
  return static_cast<double>(h >> (kWordBits - kMantissaBits)) * kTwoToMinus53;
}

}  // namespace mla::kernels

#endif  // MLASERVE_KERNELS_SAMPLE_UNIFORM_H_
