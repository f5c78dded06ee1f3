// Tests for kernels::cpu::Linear: y[r, o] = sum_i x[r, i] * w[o, i], bf16 weights, float32 sums.
//
// Reference: the same products in double. Tolerance per element:
//   |y - ref| <= atol + rtol * |ref|, rtol = 1e-5, atol = 1e-6 * sum_i |x[r, i] * w[o, i]|,
// the atol term covering cancellation (float32 summation error scales with the sum of |terms|).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr double kRtol = 1e-5;
constexpr double kAtolPerAbsSum = 1e-6;

struct Problem {
  int64_t rows, in, out;
  std::vector<float> x;
  std::vector<bf16> w;
};

Problem RandomProblem(int64_t rows, int64_t in, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Problem p{rows, in, out, std::vector<float>(rows * in), std::vector<bf16>(out * in)};
  for (float& v : p.x) v = dist(rng);
  for (bf16& v : p.w) v = FloatToBf16(dist(rng));
  return p;
}

// Checks Linear against the double reference; returns the worst error / tolerance.
double CheckAgainstReference(const Problem& p) {
  std::vector<float> y(p.rows * p.out, std::nanf(""));
  Linear(p.x.data(), p.w.data(), p.rows, p.in, p.out, y.data());
  double worst_ratio = 0.0, worst_err = 0.0;
  int64_t worst_index = 0;
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t o = 0; o < p.out; ++o) {
      double ref = 0.0, abs_sum = 0.0;
      for (int64_t i = 0; i < p.in; ++i) {
        const double term = static_cast<double>(p.x[r * p.in + i]) *
                            static_cast<double>(Bf16ToFloat(p.w[o * p.in + i]));
        ref += term;
        abs_sum += std::fabs(term);
      }
      const double got = y[r * p.out + o];
      const double err = std::fabs(got - ref);
      const double tol = kAtolPerAbsSum * abs_sum + kRtol * std::fabs(ref);
      EXPECT_FALSE(std::isnan(got)) << "r=" << r << " o=" << o;
      EXPECT_LE(err, tol) << "r=" << r << " o=" << o << " got=" << got << " ref=" << ref;
      if (err / tol > worst_ratio) {
        worst_ratio = err / tol;
        worst_err = err;
        worst_index = r * p.out + o;
      }
    }
  }
  std::printf("Linear %ldx%ldx%ld: max err %.3g at %ld, %.1f%% of tolerance\n",
              static_cast<long>(p.rows), static_cast<long>(p.in), static_cast<long>(p.out),
              worst_err, static_cast<long>(worst_index), 100.0 * worst_ratio);
  return worst_ratio;
}

TEST(Linear, HandCheckedSmallCase) {
  // x = [[1, 2], [3, 4]], w = [[1, 0], [0.5, -1], [2, 2]] (all exact in bf16).
  const std::vector<float> x = {1, 2, 3, 4};
  std::vector<bf16> w;
  for (float v : {1.0f, 0.0f, 0.5f, -1.0f, 2.0f, 2.0f}) w.push_back(FloatToBf16(v));
  const int64_t rows = 2, in = 2, out = 3;
  std::vector<float> y(rows * out);
  Linear(x.data(), w.data(), rows, in, out, y.data());
  const std::vector<float> expected = {1.0f, -1.5f, 6.0f, 3.0f, -2.5f, 14.0f};
  for (size_t k = 0; k < y.size(); ++k) EXPECT_EQ(y[k], expected[k]) << "k=" << k;
}

TEST(Linear, MatchesDoubleReferenceOnOddSizes) {
  const uint32_t seed = 20240611;
  std::printf("seed %u\n", seed);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {64, 256, 96}, {5, 300, 70}};
  uint32_t k = 0;
  for (const auto& s : shapes) {
    EXPECT_LE(CheckAgainstReference(RandomProblem(s[0], s[1], s[2], seed + k++)), 1.0);
  }
}

TEST(Linear, RowResultIndependentOfBatch) {
  // Serving needs a token's output not to depend on its batch-mates: bit-exact per row.
  const uint32_t seed = 7;
  std::printf("seed %u\n", seed);
  const Problem p = RandomProblem(9, 200, 45, seed);
  std::vector<float> batched(p.rows * p.out);
  Linear(p.x.data(), p.w.data(), p.rows, p.in, p.out, batched.data());
  for (int64_t r = 0; r < p.rows; ++r) {
    std::vector<float> single(p.out);
    Linear(p.x.data() + r * p.in, p.w.data(), 1, p.in, p.out, single.data());
    for (int64_t o = 0; o < p.out; ++o) {
      EXPECT_EQ(single[o], batched[r * p.out + o]) << "r=" << r << " o=" << o;
    }
  }
}

}  // namespace
}  // namespace mla::kernels::cpu

namespace mla::kernels::cpu {
namespace {

// The float64 variant: any split of the reduction dimension, summed in float64 and rounded
// once, gives the same float as the whole sum (what tensor parallelism relies on).
TEST(Linear, Float64PartialsRoundToTheWholeSum) {
  const uint32_t seed = 4242;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t rows = 5, in = 384, out = 37;
  std::vector<float> x(rows * in);
  std::vector<bf16> w(out * in);
  for (auto& v : x) v = normal(rng);
  for (auto& v : w) v = FloatToBf16(normal(rng));
  std::vector<double> whole(rows * out);
  Linear(x.data(), w.data(), rows, in, out, whole.data());
  for (int64_t parts : {2, 3, 4, 8}) {
    const int64_t step = in / parts;
    std::vector<double> sum(rows * out, 0.0), part(rows * out);
    std::vector<float> xs(rows * step);
    std::vector<bf16> ws(out * step);
    for (int64_t p = 0; p < parts; ++p) {
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(x.data() + r * in + p * step, step, xs.data() + r * step);
      }
      for (int64_t o = 0; o < out; ++o) {
        std::copy_n(w.data() + o * in + p * step, step, ws.data() + o * step);
      }
      Linear(xs.data(), ws.data(), rows, step, out, part.data());
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i];
    }
    int mismatches = 0;
    for (size_t i = 0; i < sum.size(); ++i) {
      mismatches += static_cast<float>(sum[i]) != static_cast<float>(whole[i]);
      ASSERT_NEAR(sum[i], whole[i], 1e-12 * (1 + std::abs(whole[i])));
    }
    std::printf("%lld parts: %d of %zu floats differ\n", static_cast<long long>(parts),
                mismatches, sum.size());
    EXPECT_EQ(mismatches, 0);
  }
}

}  // namespace
}  // namespace mla::kernels::cpu
