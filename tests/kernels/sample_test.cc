// Tests for kernels::cpu::Sample and SampleUniform.
// Statistical checks use Pearson's chi-square over the kept tokens with the bound
// df + 10 * sqrt(2 df) (a > 7-sigma event for a correct sampler; the seeds are fixed, so the
// outcome is deterministic), and require zero draws of every excluded token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr int64_t kDraws = 200000;
constexpr int64_t kVocab = 1000;

SamplingParams Params(float temperature, int32_t top_k, float top_p, uint64_t seed) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = seed;
  return p;
}

// p = [.4 .3 .2 .1] at temperature 1.
std::vector<float> FourTokenLogits() {
  return {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
}

std::vector<float> RandomLogits(int64_t vocab, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> v(vocab);
  for (float& e : v) e = dist(rng);
  return v;
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Chi-square of the counts against `expected` (zeros must get no draws).
void ExpectDistribution(const std::vector<int64_t>& counts, const std::vector<double>& expected,
                        const char* what) {
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  double chi2 = 0.0;
  int df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << what << " token " << i << " must be excluded";
      continue;
    }
    const double e = expected[i] * total;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++df;
  }
  const double bound = df + 10.0 * std::sqrt(2.0 * std::max(df, 1));
  EXPECT_LE(chi2, bound) << what;
  std::printf("%s: chi2 %.2f with %d df (bound %.1f)\n", what, chi2, df, bound);
}

std::vector<int64_t> CountOverSeeds(const std::vector<float>& logits, SamplingParams params) {
  std::vector<int64_t> counts(logits.size(), 0);
  const int64_t vocab = static_cast<int64_t>(logits.size());
  for (int64_t n = 0; n < kDraws; ++n) {
    params.seed = static_cast<uint64_t>(n);
    ++counts[Sample(logits.data(), vocab, params, /*step=*/7)];
  }
  return counts;
}

TEST(Sample, GreedyIsArgmaxWithLowestIdOnTies) {
  const std::vector<float> tied = {1.0f, 3.0f, 2.0f, 3.0f};
  EXPECT_EQ(Sample(tied.data(), static_cast<int64_t>(tied.size()), Params(0.0f, 0, 1.0f, 5), 0), 1);
  const uint32_t seed = 81;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const std::vector<float> logits = RandomLogits(kVocab, rng);
  for (uint64_t s = 0; s < 20; ++s) {
    EXPECT_EQ(Sample(logits.data(), kVocab, Params(0.0f, 5, 0.5f, s), s * 3), Argmax(logits));
  }
}

TEST(Sample, DeterministicInLogitsParamsAndStep) {
  const uint32_t seed = 82;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const std::vector<float> logits = RandomLogits(kVocab, rng);
  const SamplingParams params = Params(0.9f, 50, 0.95f, 1234);
  for (uint64_t step = 0; step < 20; ++step) {
    const int32_t first = Sample(logits.data(), kVocab, params, step);
    EXPECT_EQ(Sample(logits.data(), kVocab, params, step), first) << "step " << step;
    EXPECT_EQ(SampleUniform(params.seed, step), SampleUniform(params.seed, step));
  }
}

TEST(SampleUniform, InUnitIntervalAndUniform) {
  const int bins = 10;
  std::vector<int64_t> counts(bins, 0);
  std::set<double> distinct;
  for (int64_t n = 0; n < kDraws; ++n) {
    const int64_t seeds = 100;
    const double u =
        SampleUniform(static_cast<uint64_t>(n % seeds), static_cast<uint64_t>(n / seeds));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++counts[static_cast<int>(u * bins)];
    distinct.insert(u);
  }
  EXPECT_EQ(static_cast<int64_t>(distinct.size()), kDraws);
  ExpectDistribution(counts, std::vector<double>(bins, 1.0 / bins), "SampleUniform 10 bins");
}

TEST(Sample, FrequenciesOverSeedsMatchRenormalisedDistribution) {
  const std::vector<float> logits = FourTokenLogits();
  // top_p .65: cumulative .4, .7 -> keep {0, 1}, renormalised [4/7, 3/7].
  ExpectDistribution(CountOverSeeds(logits, Params(1.0f, 0, 0.65f, 0)), {4.0 / 7, 3.0 / 7, 0, 0},
                     "top_p .65");
  // top_k 3 (mass .9), top_p .8 of it (.72): cumulative .4, .7, .9 -> [4/9, 3/9, 2/9].
  ExpectDistribution(CountOverSeeds(logits, Params(1.0f, 3, 0.8f, 0)),
                     {4.0 / 9, 3.0 / 9, 2.0 / 9, 0}, "top_k 3, top_p .8");
  // Temperature 2, no filter: p ~ sqrt([.4 .3 .2 .1]).
  std::vector<double> warm = {std::sqrt(0.4), std::sqrt(0.3), std::sqrt(0.2), std::sqrt(0.1)};
  const double sum = warm[0] + warm[1] + warm[2] + warm[3];
  for (double& p : warm) p /= sum;
  ExpectDistribution(CountOverSeeds(logits, Params(2.0f, 0, 1.0f, 0)), warm, "temperature 2");
}

TEST(Sample, DifferentStepsDrawFromTheDistribution) {
  const std::vector<float> logits = FourTokenLogits();
  const SamplingParams params = Params(1.0f, 0, 1.0f, 99);
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t step = 0; step < kDraws; ++step) {
    ++counts[Sample(logits.data(), static_cast<int64_t>(logits.size()), params,
                    static_cast<uint64_t>(step))];
  }
  ExpectDistribution(counts, {0.4, 0.3, 0.2, 0.1}, "one seed over steps");
}

TEST(Sample, TopKOneAndTinyTopPEqualGreedy) {
  const uint32_t seed = 83;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = RandomLogits(kVocab, rng);
    const uint64_t s = static_cast<uint64_t>(trial);
    EXPECT_EQ(Sample(logits.data(), kVocab, Params(1.5f, 1, 1.0f, s), s), Argmax(logits));
    EXPECT_EQ(Sample(logits.data(), kVocab, Params(1.5f, 0, 1e-6f, s), s), Argmax(logits));
  }
}

TEST(Sample, TiedLogitsUnderTopKKeepLowerIds) {
  const int64_t vocab = 6;
  const std::vector<float> logits(vocab, 0.5f);
  std::vector<int64_t> counts(vocab, 0);
  for (int64_t n = 0; n < kDraws / 10; ++n) {
    ++counts[Sample(logits.data(), vocab, Params(1.0f, 2, 1.0f, static_cast<uint64_t>(n)), 0)];
  }
  ExpectDistribution(counts, {0.5, 0.5, 0, 0, 0, 0}, "tied logits, top_k 2");
}

TEST(Sample, TokenDependsOnlyOnLogitsParamsAndStep) {
  // The same request's logits at another address, with unrelated calls in between, give the
  // same token: there is no hidden state and no dependence on the batch.
  const uint32_t seed = 84;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t vocab = 300;
  const std::vector<float> mine = RandomLogits(vocab, rng);
  const SamplingParams params = Params(1.0f, 40, 0.9f, 42);
  std::vector<int32_t> alone;
  for (uint64_t step = 0; step < 30; ++step) {
    alone.push_back(Sample(mine.data(), vocab, params, step));
  }
  std::vector<float> batch = RandomLogits(3 * vocab, rng);
  std::copy(mine.begin(), mine.end(), batch.begin() + vocab);
  for (uint64_t step = 0; step < 30; ++step) {
    Sample(batch.data(), vocab, Params(0.7f, 0, 1.0f, 42), step);             // batch-mate
    Sample(batch.data() + 2 * vocab, vocab, Params(1.2f, 5, 0.5f, 7), step);  // batch-mate
    EXPECT_EQ(Sample(batch.data() + vocab, vocab, params, step), alone[step]) << step;
  }
  EXPECT_GT(std::set<int32_t>(alone.begin(), alone.end()).size(), 1u);
}

}  // namespace
}  // namespace mla::kernels::cpu
