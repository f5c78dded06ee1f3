// Tests for kernels::cpu::MoeGate, MoeDispatch and MoeCombine (MODEL.md §5.2).
// Ids must match exactly; weights within 1e-6 + 1e-6 * |ref| (float32 sigmoid and sums);
// combined outputs within 4e-6 + 4e-6 * |ref|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr double kAtol = 1e-6;
constexpr double kRtol = 1e-6;
// Combine adds top_k float32 products into out: one rounding each.
constexpr double kCombineAtol = 4e-6;
constexpr double kCombineRtol = 4e-6;

// The logit whose sigmoid is p.
float Logit(double p) { return static_cast<float>(std::log(p / (1.0 - p))); }

MoeRouting Routing(int64_t experts, int64_t top_k, int64_t groups, int64_t keep, float scale,
                   bool normalise) {
  MoeRouting r;
  r.num_experts = experts;
  r.top_k = top_k;
  r.num_groups = groups;
  r.topk_groups = keep;
  r.routed_scaling_factor = scale;
  r.norm_topk_prob = normalise;
  return r;
}

void ExpectGate(const std::vector<double>& affinities, const std::vector<float>& bias,
                const MoeRouting& routing, const std::vector<int32_t>& expected_ids,
                const std::vector<double>& expected_weights) {
  std::vector<float> logits;
  for (double p : affinities) logits.push_back(Logit(p));
  std::vector<int32_t> ids(routing.top_k, -1);
  std::vector<float> weights(routing.top_k);
  MoeGate(logits.data(), bias.empty() ? nullptr : bias.data(), 1, routing, ids.data(),
          weights.data());
  EXPECT_EQ(ids, expected_ids);
  for (int64_t k = 0; k < routing.top_k; ++k) {
    EXPECT_NEAR(weights[k], expected_weights[k], kAtol + kRtol * expected_weights[k]) << "k=" << k;
  }
}

// 8 experts in 4 groups of 2, keep 2 groups, top-2, normalised, scale 2.5.
// s = [.9 .1 | .6 .55 | .7 .65 | .2 .3]: group scores 1.0, 1.15, 1.35, 0.5 keep groups 2 and 1,
// so the best single expert (0, s = .9) sits in a dropped group. Top-2 of {2,3,4,5} = 4, 5;
// weights 2.5 * [.7, .65] / 1.35.
const std::vector<double> kAffinities = {0.9, 0.1, 0.6, 0.55, 0.7, 0.65, 0.2, 0.3};

TEST(MoeGate, BestExpertInDroppedGroupIsNotChosen) {
  ExpectGate(kAffinities, {}, Routing(8, 2, 4, 2, 2.5f, true), {4, 5},
             {2.5 * 0.7 / 1.35, 2.5 * 0.65 / 1.35});
}

TEST(MoeGate, BiasChangesChoiceButNotWeights) {
  // bias [0 0 .15 .1 0 0 0 0]: biased b = [.9 .1 .75 .65 .7 .65 .2 .3], group scores
  // 1.0, 1.4, 1.35, 0.5 keep groups 1 and 2; top-2 by b = expert 2 (.75) then 4 (.7).
  // Weights use the unbiased s = .6 and .7: 2.5 * [.6, .7] / 1.3, in biased order.
  ExpectGate(kAffinities, {0, 0, 0.15f, 0.1f, 0, 0, 0, 0}, Routing(8, 2, 4, 2, 2.5f, true), {2, 4},
             {2.5 * 0.6 / 1.3, 2.5 * 0.7 / 1.3});
}

TEST(MoeGate, TiesGoToLowerGroupAndLowerExpert) {
  // All equal: groups 0 and 1 kept, experts 0 and 1 chosen, equal weights.
  ExpectGate(std::vector<double>(8, 0.4), {}, Routing(8, 2, 4, 2, 2.5f, true), {0, 1},
             {1.25, 1.25});
}

TEST(MoeGate, SingleExpertGroupsUnnormalised) {
  // One expert per group: a group's score is that expert's. No normalisation, scale 1.
  ExpectGate({0.2, 0.9, 0.4, 0.8}, {}, Routing(4, 2, 4, 2, 1.0f, false), {1, 3}, {0.9, 0.8});
}

TEST(MoeGate, ExcludedExpertsNeverChosenEvenOverNegativeScores) {
  // bias [2 -1 | 0 0 | 0 0 | 0 0], s = .5 everywhere: group scores 2, 1, 1, 1 keep groups 0, 1.
  // Top-4 must be experts 0..3 even though expert 1's biased score (-.5) is below the excluded
  // experts' (.5, or 0 if they were zero-filled): they are excluded (-inf). Order: 0 (2.5),
  // 2, 3 (.5, lower id first), 1 (-.5). Weights: s = .5 each, normalised: .25.
  ExpectGate(std::vector<double>(8, 0.5), {2, -1, 0, 0, 0, 0, 0, 0},
             Routing(8, 4, 4, 2, 1.0f, true), {0, 2, 3, 1}, {0.25, 0.25, 0.25, 0.25});
}

// An independent reference: double sigmoid, explicit -inf masking, stable sorts.
void ReferenceGate(const float* logits, const float* bias, const MoeRouting& r, int32_t* ids,
                   double* weights) {
  const int64_t e_count = r.num_experts, group_size = e_count / r.num_groups;
  std::vector<double> s(e_count), b(e_count), group_score(r.num_groups);
  for (int64_t e = 0; e < e_count; ++e) {
    s[e] = 1.0 / (1.0 + std::exp(-double(logits[e])));
    b[e] = s[e] + bias[e];
  }
  for (int64_t g = 0; g < r.num_groups; ++g) {
    std::vector<double> v(b.begin() + g * group_size, b.begin() + (g + 1) * group_size);
    std::sort(v.rbegin(), v.rend());
    group_score[g] = v[0] + v[1];
  }
  std::vector<int32_t> groups(r.num_groups);
  std::iota(groups.begin(), groups.end(), 0);
  std::stable_sort(groups.begin(), groups.end(),
                   [&](int32_t x, int32_t y) { return group_score[x] > group_score[y]; });
  std::vector<double> masked(e_count, -std::numeric_limits<double>::infinity());
  for (int64_t k = 0; k < r.topk_groups; ++k) {
    for (int64_t e = groups[k] * group_size; e < (groups[k] + 1) * group_size; ++e) {
      masked[e] = b[e];
    }
  }
  std::vector<int32_t> order(e_count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t x, int32_t y) { return masked[x] > masked[y]; });
  double total = 0.0;
  for (int64_t k = 0; k < r.top_k; ++k) total += s[order[k]];
  for (int64_t k = 0; k < r.top_k; ++k) {
    ids[k] = order[k];
    weights[k] = s[order[k]] / total * r.routed_scaling_factor;
  }
}

TEST(MoeGate, MatchesReferenceOnRandomTokens) {
  const uint32_t seed = 71;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::uniform_real_distribution<float> bias_dist(-0.1f, 0.1f);
  const MoeRouting routing = Routing(64, 6, 8, 4, 2.5f, true);
  const int64_t tokens = 50;
  std::vector<float> logits(tokens * routing.num_experts), bias(routing.num_experts);
  for (float& v : logits) v = dist(rng);
  for (float& v : bias) v = bias_dist(rng);
  std::vector<int32_t> ids(tokens * routing.top_k);
  std::vector<float> weights(tokens * routing.top_k);
  MoeGate(logits.data(), bias.data(), tokens, routing, ids.data(), weights.data());
  double worst = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int32_t> ref_ids(routing.top_k);
    std::vector<double> ref_w(routing.top_k);
    ReferenceGate(logits.data() + t * routing.num_experts, bias.data(), routing, ref_ids.data(),
                  ref_w.data());
    double sum = 0.0;
    for (int64_t k = 0; k < routing.top_k; ++k) {
      const int64_t at = t * routing.top_k + k;
      EXPECT_EQ(ids[at], ref_ids[k]) << "t=" << t << " k=" << k;
      EXPECT_NEAR(weights[at], ref_w[k], kAtol + kRtol * ref_w[k]) << "t=" << t << " k=" << k;
      worst = std::max(worst, std::fabs(weights[at] - ref_w[k]));
      sum += weights[at];
    }
    EXPECT_NEAR(sum, routing.routed_scaling_factor, 1e-5);
  }
  std::printf("MoeGate 50 tokens, E=64: max weight err %.3g (atol %.0e)\n", worst, kAtol);
}

// MoeGateWeights: on MoeGate's own choice it gives MoeGate's weights bit for bit; on a forced
// choice (other experts, another order) the double-precision formula (sigmoid of the chosen
// logits, normalised, scaled), in the forced order.
TEST(MoeGateWeights, GivesTheGatesWeightsForAnyChoice) {
  std::mt19937 rng(73);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  const MoeRouting routing = Routing(64, 6, 8, 4, 2.5f, true);
  const int64_t tokens = 20, k = routing.top_k;
  std::vector<float> logits(tokens * routing.num_experts);
  for (float& v : logits) v = dist(rng);
  std::vector<int32_t> ids(tokens * k);
  std::vector<float> weights(tokens * k), again(tokens * k);
  MoeGate(logits.data(), nullptr, tokens, routing, ids.data(), weights.data());
  MoeGateWeights(logits.data(), ids.data(), tokens, routing, again.data());
  for (int64_t i = 0; i < tokens * k; ++i) EXPECT_EQ(again[i], weights[i]) << i;

  std::vector<int32_t> forced(tokens * k);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) forced[t * k + j] = static_cast<int32_t>((7 * t + 11 * j) % 64);
  }
  MoeGateWeights(logits.data(), forced.data(), tokens, routing, weights.data());
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> s(k);
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      s[j] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[t * 64 + forced[t * k + j]])));
      sum += s[j];
    }
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_NEAR(weights[t * k + j], s[j] / sum * 2.5, 1e-6) << "t=" << t << " j=" << j;
    }
  }
}

TEST(MoeDispatch, HandCheckedGrouping) {
  // Pairs 0..5 go to experts 2 0 0 1 2 1 (tokens [2,0] [0,1] [2,1], top-2, 4 experts).
  const std::vector<int32_t> ids = {2, 0, 0, 1, 2, 1};
  const int64_t tokens = 3, top_k = 2, experts = 4;
  std::vector<int32_t> offsets(experts + 1, -1), sorted(tokens * top_k, -1);
  MoeDispatch(ids.data(), tokens, top_k, experts, offsets.data(), sorted.data());
  EXPECT_EQ(offsets, (std::vector<int32_t>{0, 2, 4, 6, 6}));
  EXPECT_EQ(sorted, (std::vector<int32_t>{1, 2, 3, 5, 0, 4}));
}

TEST(MoeDispatch, CombineWithIdentityExpertsGivesWeightedSum) {
  const uint32_t seed = 72;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const MoeRouting routing = Routing(16, 4, 4, 2, 2.5f, true);
  const int64_t tokens = 9, dim = 33, top_k = routing.top_k, experts = routing.num_experts;
  std::vector<float> logits(tokens * experts), x(tokens * dim);
  for (float& v : logits) v = dist(rng);
  for (float& v : x) v = dist(rng);
  std::vector<int32_t> ids(tokens * top_k), offsets(experts + 1), sorted(tokens * top_k);
  std::vector<float> weights(tokens * top_k);
  MoeGate(logits.data(), nullptr, tokens, routing, ids.data(), weights.data());
  MoeDispatch(ids.data(), tokens, top_k, experts, offsets.data(), sorted.data());

  // Every pair appears once, under its expert, in ascending order within the expert.
  std::vector<int> seen(tokens * top_k, 0);
  for (int64_t e = 0; e < experts; ++e) {
    for (int32_t j = offsets[e]; j < offsets[e + 1]; ++j) {
      ++seen[sorted[j]];
      EXPECT_EQ(ids[sorted[j]], e);
      if (j > offsets[e]) {
        EXPECT_LT(sorted[j - 1], sorted[j]);
      }
    }
  }
  EXPECT_EQ(offsets[experts], tokens * top_k);
  for (int v : seen) EXPECT_EQ(v, 1);

  // Identity experts: expert_out[j] = x[token of sorted[j]]; out starts as 1 (accumulated into).
  std::vector<float> expert_out(tokens * top_k * dim);
  for (int64_t j = 0; j < tokens * top_k; ++j) {
    std::copy_n(x.data() + (sorted[j] / top_k) * dim, dim, expert_out.data() + j * dim);
  }
  std::vector<float> out(tokens * dim, 1.0f);
  MoeCombine(expert_out.data(), sorted.data(), weights.data(), tokens * top_k, top_k, dim,
             out.data());
  double worst = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    double weight_sum = 0.0;
    for (int64_t k = 0; k < top_k; ++k) weight_sum += weights[t * top_k + k];
    for (int64_t d = 0; d < dim; ++d) {
      const double ref = 1.0 + weight_sum * x[t * dim + d];
      const double err = std::fabs(out[t * dim + d] - ref);
      EXPECT_LE(err, kCombineAtol + kCombineRtol * std::fabs(ref)) << "t=" << t << " d=" << d;
      worst = std::max(worst, err);
    }
  }
  std::printf("Dispatch->combine identity: max err %.3g\n", worst);
}

}  // namespace
}  // namespace mla::kernels::cpu
