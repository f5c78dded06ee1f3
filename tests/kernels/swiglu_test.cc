// Tests for kernels::cpu::SiluMul: out = g / (1 + exp(-g)) * up.
// Tolerance vs the double reference: |out - ref| <= 1e-6 + 1e-6 * |ref| (float32 math).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr double kAtol = 1e-6;
constexpr double kRtol = 1e-6;

double ReferenceSiluMul(double g, double up) { return g / (1.0 + std::exp(-g)) * up; }

TEST(SiluMul, HandCheckedValues) {
  // silu(1) * 2 = 2 / (1 + e^-1); silu(-2) * 3 = -6 / (1 + e^2); silu(0) * 5 = 0.
  const std::vector<float> gate = {1.0f, -2.0f, 0.0f}, up = {2.0f, 3.0f, 5.0f};
  std::vector<float> out(gate.size());
  SiluMul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), out.data());
  EXPECT_NEAR(out[0], 1.4621171572600098, kAtol);
  EXPECT_NEAR(out[1], -0.7152175321327052, kAtol);
  EXPECT_EQ(out[2], 0.0f);
}

TEST(SiluMul, MatchesDoubleReference) {
  const uint32_t seed = 51;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  const int64_t n = 1001;
  std::vector<float> gate(n), up(n), out(n);
  for (int64_t i = 0; i < n; ++i) {
    gate[i] = dist(rng);
    up[i] = dist(rng);
  }
  SiluMul(gate.data(), up.data(), n, out.data());
  double worst_ratio = 0.0, worst_err = 0.0;
  int64_t worst_index = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double ref = ReferenceSiluMul(gate[i], up[i]);
    const double err = std::fabs(out[i] - ref), tol = kAtol + kRtol * std::fabs(ref);
    EXPECT_LE(err, tol) << "i=" << i;
    if (err / tol > worst_ratio) {
      worst_ratio = err / tol;
      worst_err = err;
      worst_index = i;
    }
  }
  std::printf("SiluMul n=%ld: max err %.3g at %ld, %.1f%% of tolerance\n", static_cast<long>(n),
              worst_err, static_cast<long>(worst_index), 100.0 * worst_ratio);
}

TEST(SiluMul, ExtremeGatesStayFinite) {
  // exp(100) overflows float: silu(-100) must be -0 (not NaN); silu(100) = 100.
  const std::vector<float> gate = {-100.0f, 100.0f}, up = {1.5f, 0.5f};
  std::vector<float> out(gate.size());
  SiluMul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), out.data());
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_FALSE(std::isnan(out[0]));
  EXPECT_EQ(out[1], 50.0f);
}

}  // namespace
}  // namespace mla::kernels::cpu
