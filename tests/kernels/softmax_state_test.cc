// Tests of SoftmaxState (kernels/softmax_state.h): one pass of Update over scores, and Merge of
// partial states over any split of the scores (empty parts included), both against a direct
// double-precision softmax: m = max s, d = sum exp(s - m), lse = ln sum exp(s),
// o = sum softmax(s)_j v_j. Tolerance: |got - ref| <= 1e-6 + 1e-5 * |ref| (float32 exp/log).
// Merge in either order: the same bits.
#include "kernels/softmax_state.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace mla::kernels {
namespace {

constexpr int kWidth = 5;  // value width carried in the caller's accumulator
constexpr double kAtol = 1e-6;
constexpr double kRtol = 1e-5;

// A state with its caller-held accumulator, as a kernel keeps them.
struct Partial {
  SoftmaxState state;
  std::vector<float> acc = std::vector<float>(kWidth, 0.0f);
};

void Add(Partial& p, float score, const float* v) {
  const SoftmaxRescale r = p.state.Update(score);
  for (int e = 0; e < kWidth; ++e) p.acc[e] = p.acc[e] * r.mine + r.theirs * v[e];
}

void MergeInto(Partial& into, const Partial& other) {
  const SoftmaxRescale r = into.state.Merge(other.state);
  for (int e = 0; e < kWidth; ++e) into.acc[e] = into.acc[e] * r.mine + r.theirs * other.acc[e];
}

// Checks the normalised output and lse of p against the double-precision softmax of the scores
// and values; returns the largest absolute error.
double ExpectMatchesDirect(const Partial& p, const std::vector<float>& scores,
                           const std::vector<float>& values, const char* what) {
  double m = -std::numeric_limits<double>::infinity();
  for (float s : scores) m = std::max(m, static_cast<double>(s));
  double d = 0.0;
  std::vector<double> o(kWidth, 0.0);
  for (size_t j = 0; j < scores.size(); ++j) {
    const double w = std::exp(scores[j] - m);
    d += w;
    for (int e = 0; e < kWidth; ++e) o[e] += w * values[j * kWidth + e];
  }
  double max_err = 0.0;
  auto check = [&](double got, double ref) {
    ASSERT_TRUE(std::isfinite(got)) << what;
    const double err = std::abs(got - ref);
    max_err = std::max(max_err, err);
    EXPECT_LE(err, kAtol + kRtol * std::abs(ref)) << what << " got " << got << " ref " << ref;
  };
  check(p.state.Lse(), m + std::log(d));
  for (int e = 0; e < kWidth; ++e) check(p.acc[e] * p.state.InverseSum(), o[e] / d);
  return max_err;
}

std::vector<float> RandomFloats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng);
  return out;
}

TEST(SoftmaxState, EmptyStateIsExactAndNaNFree) {
  SoftmaxState empty;
  EXPECT_TRUE(empty.Empty());
  EXPECT_EQ(empty.Lse(), -INFINITY);
  EXPECT_EQ(empty.InverseSum(), 0.0f);
  EXPECT_EQ(empty.Probability(1.0f), 0.0f);
  // Empty merged with empty, and a masked (-inf) score, leave it empty.
  SoftmaxRescale r = empty.Merge(SoftmaxState());
  EXPECT_EQ(r.mine, 1.0f);
  EXPECT_EQ(r.theirs, 0.0f);
  r = empty.Update(-INFINITY);
  EXPECT_EQ(r.theirs, 0.0f);
  EXPECT_TRUE(empty.Empty());
  EXPECT_EQ(empty.d, 0.0f);
  // The first score: the old (zero) accumulator is dropped, the value enters with weight 1.
  r = empty.Update(-3.5f);
  EXPECT_EQ(r.mine, 0.0f);
  EXPECT_EQ(r.theirs, 1.0f);
  EXPECT_EQ(empty.m, -3.5f);
  EXPECT_EQ(empty.d, 1.0f);
  EXPECT_FLOAT_EQ(empty.Lse(), -3.5f);
  // Merging into an empty state copies the other.
  SoftmaxState into;
  r = into.Merge(empty);
  EXPECT_EQ(r.mine, 0.0f);
  EXPECT_EQ(r.theirs, 1.0f);
  EXPECT_EQ(into.m, empty.m);
  EXPECT_EQ(into.d, empty.d);
}

TEST(SoftmaxState, OnePassMatchesDirectSoftmax) {
  const uint32_t seed = 20251;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  double max_err = 0.0;
  for (size_t n : {1, 2, 7, 64, 1000}) {
    // Wide score ranges (up to +-80) and large offsets (1000) must neither overflow nor underflow.
    for (float offset : {0.0f, 1000.0f, -1000.0f}) {
      const std::vector<float> values = RandomFloats(rng, n * kWidth, -1.0f, 1.0f);
      std::vector<float> scores = RandomFloats(rng, n, -80.0f, 80.0f);
      for (float& s : scores) s += offset;
      Partial p;
      for (size_t j = 0; j < n; ++j) Add(p, scores[j], &values[j * kWidth]);
      max_err = std::max(max_err, ExpectMatchesDirect(p, scores, values, "one pass"));
    }
  }
  std::printf("max abs error %.3g\n", max_err);
}

TEST(SoftmaxState, MaskedScoresAreIgnored) {
  const std::vector<float> scores = {0.5f, -INFINITY, 2.0f, -INFINITY};
  const std::vector<float> values = {1, 2, 3, 4, 5, 9, 9, 9, 9, 9, -1, 0, 1, 0, -1, 7, 7, 7, 7, 7};
  Partial masked;
  for (size_t j = 0; j < scores.size(); ++j) Add(masked, scores[j], &values[j * kWidth]);
  const std::vector<float> kept_scores = {0.5f, 2.0f};
  const std::vector<float> kept_values = {1, 2, 3, 4, 5, -1, 0, 1, 0, -1};
  std::printf("max abs error %.3g\n",
              ExpectMatchesDirect(masked, kept_scores, kept_values, "masked"));
}

TEST(SoftmaxState, MergeOfPartsEqualsOnePassIncludingEmptyParts) {
  const uint32_t seed = 777;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  double max_err = 0.0;
  for (int trial = 0; trial < 50; ++trial) {
    const size_t n = 1 + rng() % 200;
    const std::vector<float> values = RandomFloats(rng, n * kWidth, -2.0f, 2.0f);
    const std::vector<float> scores = RandomFloats(rng, n, -30.0f, 30.0f);
    // Cut [0, n) into parts at random points; repeated cuts (and cuts at 0 and n) give empty
    // parts, at the front, the middle and the back.
    const int num_parts = 1 + static_cast<int>(rng() % 8);
    std::vector<size_t> cuts = {0, 0, n, n};
    for (int k = 1; k < num_parts; ++k) cuts.push_back(rng() % (n + 1));
    std::sort(cuts.begin(), cuts.end());
    std::vector<Partial> parts(cuts.size() - 1);
    for (size_t k = 0; k + 1 < cuts.size(); ++k) {
      for (size_t j = cuts[k]; j < cuts[k + 1]; ++j) Add(parts[k], scores[j], &values[j * kWidth]);
    }
    // Left to right (the combine kernel's order).
    Partial left;
    for (const Partial& part : parts) MergeInto(left, part);
    max_err = std::max(max_err, ExpectMatchesDirect(left, scores, values, "merged in order"));
    // A random pairwise tree (a parallel reduction's order).
    std::vector<Partial> pool = parts;
    while (pool.size() > 1) {
      const size_t a = rng() % (pool.size() - 1);
      MergeInto(pool[a], pool[a + 1]);
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(a) + 1);
    }
    max_err = std::max(max_err, ExpectMatchesDirect(pool[0], scores, values, "merged as a tree"));
  }
  std::printf("max abs error %.3g\n", max_err);
}

// The decode combine merges a row's pieces in a butterfly, where lane i computes Merge(a, b) and
// its partner Merge(b, a): the two must give the same bits (the same two products, one
// commutative addition), including equal maxima and empty states.
TEST(SoftmaxState, MergeIsCommutativeBitForBit) {
  const uint32_t seed = 4242;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const std::vector<float> maxima = RandomFloats(rng, 4, -20.0f, 20.0f);  // few: equal m's occur
  auto random_state = [&]() {
    if (rng() % 6 == 0) return SoftmaxState{};  // empty
    return SoftmaxState{maxima[rng() % maxima.size()], RandomFloats(rng, 1, 1.0f, 64.0f)[0]};
  };
  int equal_maxima = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const SoftmaxState a = random_state(), b = random_state();
    equal_maxima += a.m == b.m && !a.Empty();
    SoftmaxState ab = a, ba = b;
    const SoftmaxRescale r_ab = ab.Merge(b);
    const SoftmaxRescale r_ba = ba.Merge(a);
    ASSERT_EQ(std::bit_cast<uint32_t>(ab.m), std::bit_cast<uint32_t>(ba.m)) << "trial " << trial;
    ASSERT_EQ(std::bit_cast<uint32_t>(ab.d), std::bit_cast<uint32_t>(ba.d)) << "trial " << trial;
    // The factors swap roles: b's accumulator gets `theirs` in one order and `mine` in the
    // other, and the same bits in both (when both are empty there is nothing to scale).
    if (a.Empty() && b.Empty()) continue;
    EXPECT_EQ(std::bit_cast<uint32_t>(r_ab.theirs), std::bit_cast<uint32_t>(r_ba.mine)) << trial;
    EXPECT_EQ(std::bit_cast<uint32_t>(r_ab.mine), std::bit_cast<uint32_t>(r_ba.theirs)) << trial;
  }
  EXPECT_GT(equal_maxima, 100);  // the case of a tie in m was exercised
}

}  // namespace
}  // namespace mla::kernels
