// Tests for YarnInverseFrequencies, SoftmaxScale and ApplyRope (MODEL.md §3.4, §4).
// Tolerances are stated per test: the MODEL.md table is rounded to 4 significant digits
// (rtol 5e-4); rotations are float32 (atol 1e-6 + rtol 1e-6 on unit-scale values).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr int64_t kRopeDim = 64;
constexpr int64_t kPairs = kRopeDim / 2;
constexpr int64_t kV3QkHeadDim = 192;

RopeConfig V3Config() {
  RopeConfig c;
  c.rope_dim = kRopeDim;
  c.theta = 10000.0;
  c.factor = 40.0;
  c.original_max_position = 4096;
  c.beta_fast = 32.0;
  c.beta_slow = 1.0;
  c.mscale = 1.0;
  c.mscale_all_dim = 1.0;
  return c;
}

double BaseFrequency(int64_t i) { return std::pow(10000.0, -2.0 * i / kRopeDim); }

TEST(YarnInverseFrequencies, MatchesModelMdTableForV3) {
  const std::vector<float> w = YarnInverseFrequencies(V3Config());
  ASSERT_EQ(static_cast<int64_t>(w.size()), kPairs);
  const struct {
    int i;
    double value;
  } table[] = {{0, 1.0},       {5, 2.371e-1},  {10, 5.623e-2}, {11, 3.901e-2},
               {12, 2.688e-2}, {14, 1.245e-2}, {16, 5.500e-3}, {18, 2.249e-3},
               {20, 7.906e-4}, {22, 1.778e-4}, {23, 3.334e-5}, {31, 3.334e-6}};
  const double rtol = 5e-4;  // The table has 4 significant digits.
  double worst = 0.0;
  for (const auto& row : table) {
    const double rel = std::fabs(w[row.i] - row.value) / row.value;
    EXPECT_LE(rel, rtol) << "i=" << row.i << " got " << w[row.i] << " table " << row.value;
    worst = std::max(worst, rel);
  }
  std::printf("YaRN V3 table: max rel err %.3g (%.1f%% of tolerance)\n", worst,
              100.0 * worst / rtol);
}

TEST(YarnInverseFrequencies, RampRunsFromLow10ToHigh23ForV3) {
  // Recover rho_i = (w_i - w'_i) / (w_i (1 - 1/s)) and compare with clamp((i - 10) / 13, 0, 1).
  const std::vector<float> w = YarnInverseFrequencies(V3Config());
  const double s = 40.0, atol = 1e-6;
  double worst = 0.0;
  for (int64_t i = 0; i < kPairs; ++i) {
    const double base = BaseFrequency(i);
    const double rho = (base - w[i]) / (base * (1.0 - 1.0 / s));
    const double expected = std::clamp((i - 10.0) / 13.0, 0.0, 1.0);
    EXPECT_NEAR(rho, expected, atol) << "i=" << i;
    worst = std::max(worst, std::fabs(rho - expected));
  }
  EXPECT_EQ(w[10], static_cast<float>(BaseFrequency(10)));      // low: unchanged
  EXPECT_LT(w[11], static_cast<float>(BaseFrequency(11)));      // first blended pair
  EXPECT_EQ(w[23], static_cast<float>(BaseFrequency(23) / s));  // high: fully interpolated
  EXPECT_GT(w[22], static_cast<float>(BaseFrequency(22) / s));  // last blended pair
  std::printf("YaRN ramp: max abs err %.3g (atol %.0e)\n", worst, atol);
}

TEST(YarnInverseFrequencies, FactorOneIsPlainRope) {
  RopeConfig c = V3Config();
  c.factor = 1.0;
  const std::vector<float> w = YarnInverseFrequencies(c);
  for (int64_t i = 0; i < kPairs; ++i) {
    EXPECT_EQ(w[i], static_cast<float>(BaseFrequency(i))) << "i=" << i;
  }
}

TEST(SoftmaxScale, V3Value) {
  // MODEL.md §3.4: 192^-0.5 * (0.1 ln 40 + 1)^2 = 0.1352337789. The result is a float, so the
  // check is to float precision: within half an ulp-ish (2^-24 relative) of the constant.
  const double expected = 0.1352337789;
  const float got = SoftmaxScale(V3Config(), kV3QkHeadDim);
  const double rel = std::fabs(got - expected) / expected;
  EXPECT_LE(rel, std::ldexp(1.0, -24));
  EXPECT_EQ(got, static_cast<float>(expected));
  std::printf("SoftmaxScale V3 %.10f, rel err %.3g vs 0.1352337789\n", got, rel);
  RopeConfig plain = V3Config();
  plain.factor = 1.0;
  EXPECT_EQ(SoftmaxScale(plain, kV3QkHeadDim),
            static_cast<float>(1.0 / std::sqrt(static_cast<double>(kV3QkHeadDim))));
}

std::vector<float> RandomVector(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = dist(rng);
  return v;
}

TEST(ApplyRope, PositionZeroIsIdentity) {
  const uint32_t seed = 41;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t rows = 2, heads = 3;
  std::vector<float> x = RandomVector(rows * heads * kRopeDim, rng);
  const std::vector<float> before = x;
  const std::vector<int32_t> positions(rows, 0);
  const std::vector<float> inv_freq = YarnInverseFrequencies(V3Config());
  ApplyRope(x.data(), rows, heads, heads * kRopeDim, kRopeDim, positions.data(), inv_freq.data(),
            kRopeDim, 1.0f);
  for (size_t k = 0; k < x.size(); ++k) EXPECT_EQ(x[k], before[k]) << "k=" << k;
}

TEST(ApplyRope, HandCheckedRotation) {
  // inv_freq = [1, 0.5], position 2: pair 0 turns by 2 rad, pair 1 by 1 rad.
  // (1, 0) -> (cos 2, sin 2); (0, 1) -> (-sin 1, cos 1).
  const int64_t dim = 4;
  std::vector<float> x = {1.0f, 0.0f, 0.0f, 1.0f};
  const std::vector<float> inv_freq = {1.0f, 0.5f};
  const int32_t position = 2;
  const int64_t rows = 1, heads = 1;
  ApplyRope(x.data(), rows, heads, dim, dim, &position, inv_freq.data(), dim, 1.0f);
  const double expected[] = {-0.4161468365471424, 0.9092974268256817, -0.8414709848078965,
                             0.5403023058681398};
  for (int k = 0; k < dim; ++k) EXPECT_NEAR(x[k], expected[k], 1e-6) << "k=" << k;
}

TEST(ApplyRope, StridedLayoutPreservesPairNormsAndOtherValues) {
  // q-like layout: per row `heads` vectors of 192 = 128 nope + 64 rope; rotate the rope parts.
  const uint32_t seed = 42;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t rows = 3, heads = 4, nope = 128, head_dim = nope + kRopeDim;
  std::vector<float> q = RandomVector(rows * heads * head_dim, rng);
  const std::vector<float> before = q;
  const std::vector<int32_t> positions = {5, 1000, 163839};
  const std::vector<float> inv_freq = YarnInverseFrequencies(V3Config());
  const float scale = 1.25f;
  ApplyRope(q.data() + nope, rows, heads, heads * head_dim, head_dim, positions.data(),
            inv_freq.data(), kRopeDim, scale);
  double worst = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = (r * heads + h) * head_dim;
      for (int64_t j = 0; j < nope; ++j) EXPECT_EQ(q[base + j], before[base + j]);
      for (int64_t i = 0; i < kPairs; ++i) {
        const int64_t k = base + nope + 2 * i;
        const double norm_before = std::hypot(before[k], before[k + 1]) * scale;
        const double norm_after = std::hypot(q[k], q[k + 1]);
        const double err = std::fabs(norm_after - norm_before);
        EXPECT_LE(err, 1e-6 + 1e-6 * norm_before) << "r=" << r << " h=" << h << " i=" << i;
        worst = std::max(worst, err);
      }
    }
  }
  std::printf("ApplyRope pair norms: max abs err %.3g\n", worst);
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t k = 0; k < a.size(); ++k) s += double(a[k]) * b[k];
  return s;
}

std::vector<float> Rotated(std::vector<float> v, int32_t position,
                           const std::vector<float>& inv_freq) {
  const int64_t rows = 1, heads = 1;
  ApplyRope(v.data(), rows, heads, kRopeDim, kRopeDim, &position, inv_freq.data(), kRopeDim, 1.0f);
  return v;
}

TEST(ApplyRope, DotProductDependsOnlyOnRelativePosition) {
  // Tolerance: the float32 angle p * w has rounding error <= p * w * 2^-24 <= 1000 * 6e-8 rad
  // per vector for p <= 1000 and w <= 1, so |dot difference| <= 2 * 6e-5 * |q| |k|; we allow
  // 3e-4 * |q| |k|.
  const uint32_t seed = 43;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const std::vector<float> q = RandomVector(kRopeDim, rng), k = RandomVector(kRopeDim, rng);
  const std::vector<float> inv_freq = YarnInverseFrequencies(V3Config());
  const double tol = 3e-4 * std::sqrt(Dot(q, q) * Dot(k, k));
  double worst = 0.0;
  for (int32_t offset : {0, 1, 7, 100}) {
    const double reference = Dot(Rotated(q, offset, inv_freq), Rotated(k, 0, inv_freq));
    for (int32_t start : {1, 13, 500, 900}) {
      const double got = Dot(Rotated(q, start + offset, inv_freq), Rotated(k, start, inv_freq));
      EXPECT_NEAR(got, reference, tol) << "offset=" << offset << " start=" << start;
      worst = std::max(worst, std::fabs(got - reference));
    }
  }
  std::printf("ApplyRope relative position: max err %.3g, %.1f%% of tolerance\n", worst,
              100.0 * worst / tol);
}

}  // namespace
}  // namespace mla::kernels::cpu
