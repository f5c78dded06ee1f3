// Tests for kernels::cpu::RmsNorm and AddRmsNorm.
// Tolerance vs the double reference: |y - ref| <= 1e-6 + 1e-5 * |ref| (float32 math).
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
constexpr double kRtol = 1e-5;
constexpr float kEps = 1e-6f;

std::vector<float> RandomVector(int64_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = dist(rng);
  return v;
}

std::vector<double> ReferenceRmsNorm(const std::vector<float>& x, const std::vector<float>& w,
                                     int64_t rows, int64_t dim, double eps) {
  std::vector<double> y(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double sum_squares = 0.0;
    for (int64_t j = 0; j < dim; ++j) sum_squares += double(x[r * dim + j]) * x[r * dim + j];
    const double inv = 1.0 / std::sqrt(sum_squares / dim + eps);
    for (int64_t j = 0; j < dim; ++j) y[r * dim + j] = w[j] * (x[r * dim + j] * inv);
  }
  return y;
}

void ExpectClose(const std::vector<float>& got, const std::vector<double>& ref, const char* what) {
  double worst_ratio = 0.0, worst_err = 0.0;
  size_t worst_index = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    const double err = std::fabs(got[k] - ref[k]);
    const double tol = kAtol + kRtol * std::fabs(ref[k]);
    EXPECT_FALSE(std::isnan(got[k])) << what << " k=" << k;
    EXPECT_LE(err, tol) << what << " k=" << k << " got=" << got[k] << " ref=" << ref[k];
    if (err / tol > worst_ratio) {
      worst_ratio = err / tol;
      worst_err = err;
      worst_index = k;
    }
  }
  std::printf("%s: max err %.3g at %zu, %.1f%% of tolerance\n", what, worst_err, worst_index,
              100.0 * worst_ratio);
}

TEST(RmsNorm, HandCheckedCase) {
  // mean(x^2) = (9 + 16) / 2 = 12.5, so y = [1 * 3, 2 * 4] / sqrt(12.5 + 1e-6).
  const std::vector<float> x = {3.0f, 4.0f}, w = {1.0f, 2.0f};
  const int64_t rows = 1, dim = 2;
  std::vector<float> y(rows * dim);
  RmsNorm(x.data(), w.data(), rows, dim, kEps, y.data());
  ExpectClose(y, {0.8485281034827336, 2.2627416092872896}, "RmsNorm hand case");
}

TEST(RmsNorm, MatchesDoubleReference) {
  const uint32_t seed = 31;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t rows = 7, dim = 301;
  const std::vector<float> x = RandomVector(rows * dim, rng, -3.0f, 3.0f);
  const std::vector<float> w = RandomVector(dim, rng, 0.5f, 1.5f);
  std::vector<float> y(rows * dim);
  RmsNorm(x.data(), w.data(), rows, dim, kEps, y.data());
  ExpectClose(y, ReferenceRmsNorm(x, w, rows, dim, kEps), "RmsNorm 7x301");
}

TEST(RmsNorm, InPlaceEqualsOutOfPlace) {
  const uint32_t seed = 32;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t rows = 4, dim = 64;
  std::vector<float> x = RandomVector(rows * dim, rng, -2.0f, 2.0f);
  const std::vector<float> w = RandomVector(dim, rng, -1.0f, 1.0f);
  std::vector<float> y(rows * dim);
  RmsNorm(x.data(), w.data(), rows, dim, kEps, y.data());
  RmsNorm(x.data(), w.data(), rows, dim, kEps, x.data());
  for (size_t k = 0; k < x.size(); ++k) EXPECT_EQ(x[k], y[k]) << "k=" << k;
}

TEST(AddRmsNorm, UpdatesResidualAndNormalisesIt) {
  const uint32_t seed = 33;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t rows = 5, dim = 129;
  std::vector<float> residual = RandomVector(rows * dim, rng, -2.0f, 2.0f);
  const std::vector<float> delta = RandomVector(rows * dim, rng, -1.0f, 1.0f);
  const std::vector<float> w = RandomVector(dim, rng, 0.5f, 1.5f);
  std::vector<float> sum(rows * dim);
  for (size_t k = 0; k < sum.size(); ++k) sum[k] = residual[k] + delta[k];
  std::vector<float> y(rows * dim), y_expected(rows * dim);
  AddRmsNorm(residual.data(), delta.data(), w.data(), rows, dim, kEps, y.data());
  RmsNorm(sum.data(), w.data(), rows, dim, kEps, y_expected.data());
  for (size_t k = 0; k < sum.size(); ++k) {
    EXPECT_EQ(residual[k], sum[k]) << "k=" << k;
    EXPECT_EQ(y[k], y_expected[k]) << "k=" << k;
  }
  ExpectClose(y, ReferenceRmsNorm(sum, w, rows, dim, kEps), "AddRmsNorm 5x129");
}

}  // namespace
}  // namespace mla::kernels::cpu
