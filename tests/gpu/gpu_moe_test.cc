// cuda::MoeGate, cuda::MoeDispatch and cuda::MoeCombine vs their CPU twins on fresh random
// inputs, outputs poisoned (NaN / -1) before each launch.
// - MoeGate: expert ids identical, weights within fp32 rounding (relative L2 <= 1e-5,
//   |got - ref| <= 1e-5 |ref|). The device's expf may differ from the host's by an ulp, so inputs
//   are drawn without near-ties where a choice is made: per token, the group scores around the
//   topk_groups boundary and the biased scores of the top_k + 1 best kept experts are >= 1e-3
//   apart (tokens failing that are redrawn; the count is printed). Routings: V3 (256 experts,
//   8 groups, 4 kept, top 8, scale 2.5), no groups and no bias, one expert per group, the tiny
//   preset's, unnormalised.
// - MoeDispatch: offsets and sorted pairs identical (integer counting sort), many tokens.
// - MoeCombine: bit-identical (same per-token order, no FMA), all pairs and one expert-parallel
//   rank's subset of the experts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr float kMinGap = 1e-3f;

// True when the token's choices are decided by margins of at least kMinGap (host math as on
// the CPU twin).
bool WellSeparated(const float* logits, const float* bias, const MoeRouting& r) {
  const int64_t e_count = r.num_experts, group_size = r.num_experts / r.num_groups;
  std::vector<float> biased(e_count);
  for (int64_t e = 0; e < e_count; ++e) {
    biased[e] = 1.0f / (1.0f + std::exp(-logits[e])) + (bias != nullptr ? bias[e] : 0.0f);
  }
  std::vector<float> group_scores(r.num_groups);
  for (int64_t g = 0; g < r.num_groups; ++g) {
    std::vector<float> v(biased.begin() + g * group_size, biased.begin() + (g + 1) * group_size);
    std::sort(v.rbegin(), v.rend());
    group_scores[g] = group_size == 1 ? v[0] : v[0] + v[1];
  }
  std::vector<int64_t> groups(r.num_groups);
  std::iota(groups.begin(), groups.end(), 0);
  std::sort(groups.begin(), groups.end(),
            [&](int64_t a, int64_t b) { return group_scores[a] > group_scores[b]; });
  if (r.topk_groups < r.num_groups &&
      group_scores[groups[r.topk_groups - 1]] - group_scores[groups[r.topk_groups]] < kMinGap) {
    return false;
  }
  std::vector<float> kept;
  for (int64_t k = 0; k < r.topk_groups; ++k) {
    for (int64_t e = groups[k] * group_size; e < (groups[k] + 1) * group_size; ++e) {
      kept.push_back(biased[e]);
    }
  }
  std::sort(kept.rbegin(), kept.rend());
  const int64_t decided = std::min<int64_t>(r.top_k + 1, static_cast<int64_t>(kept.size()));
  for (int64_t k = 0; k + 1 < decided; ++k) {
    if (kept[k] - kept[k + 1] < kMinGap) return false;
  }
  return true;
}

void CheckGate(const std::string& what, const MoeRouting& routing, int64_t tokens, bool with_bias,
               std::mt19937& rng) {
  const int64_t e_count = routing.num_experts;
  std::vector<float> bias;
  if (with_bias) bias = testing::RandomFloats(rng, e_count, -0.1f, 0.1f);
  std::vector<float> logits(tokens * e_count);
  int64_t redrawn = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (;;) {
      const std::vector<float> row = testing::RandomNormals(rng, e_count, 1.0f);
      std::copy(row.begin(), row.end(), logits.begin() + t * e_count);
      if (WellSeparated(&logits[t * e_count], with_bias ? bias.data() : nullptr, routing)) break;
      ++redrawn;
    }
  }
  std::printf("%s: %lld tokens, %lld redrawn for near-ties\n", what.c_str(),
              static_cast<long long>(tokens), static_cast<long long>(redrawn));
  std::vector<int32_t> ref_ids(tokens * routing.top_k);
  std::vector<float> ref_weights(tokens * routing.top_k);
  cpu::MoeGate(logits.data(), with_bias ? bias.data() : nullptr, tokens, routing, ref_ids.data(),
               ref_weights.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_logits, DeviceBuffer<float>::FromHost(logits));
  DeviceBuffer<float> d_bias;
  if (with_bias) {
    MLA_ASSERT_OK_AND_ASSIGN(d_bias, DeviceBuffer<float>::FromHost(bias));
  }
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ids, DeviceBuffer<int32_t>::Allocate(tokens * routing.top_k));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_weights, DeviceBuffer<float>::Allocate(tokens * routing.top_k));
  MLA_ASSERT_OK(d_ids.Fill(0xff));
  MLA_ASSERT_OK(d_weights.Fill(0xff));
  MLA_ASSERT_OK(MoeGate(d_logits.get(), with_bias ? d_bias.get() : nullptr, tokens, routing,
                        d_ids.get(), d_weights.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids, d_ids.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> weights, d_weights.ToHost());
  int64_t id_mismatches = 0, first = -1;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != ref_ids[i] && id_mismatches++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(id_mismatches, 0) << what << ": first at [" << first << "] got "
                              << (first >= 0 ? ids[first] : 0) << " ref "
                              << (first >= 0 ? ref_ids[first] : 0);
  testing::ExpectClose(what + " weights", weights, ref_weights,
                       {.rel_l2 = 1e-5, .atol = 0.0, .rtol = 1e-5});
}

TEST(GpuMoeGate, MatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckGate("V3 routing", {.num_experts = 256, .top_k = 8, .num_groups = 8, .topk_groups = 4,
                           .routed_scaling_factor = 2.5f, .norm_topk_prob = true},
            300, true, rng);
  CheckGate("no groups, no bias", {.num_experts = 64, .top_k = 6, .num_groups = 1,
                                   .topk_groups = 1, .routed_scaling_factor = 1.0f,
                                   .norm_topk_prob = true},
            100, false, rng);
  CheckGate("one expert per group", {.num_experts = 16, .top_k = 3, .num_groups = 16,
                                     .topk_groups = 5, .routed_scaling_factor = 1.5f,
                                     .norm_topk_prob = true},
            100, true, rng);
  CheckGate("tiny preset, unnormalised", {.num_experts = 8, .top_k = 2, .num_groups = 4,
                                          .topk_groups = 2, .routed_scaling_factor = 2.5f,
                                          .norm_topk_prob = false},
            50, true, rng);
}

TEST(GpuMoeGate, RejectsBadRouting) {
  MoeRouting routing{.num_experts = 256, .top_k = 40, .num_groups = 8, .topk_groups = 4};
  absl::Status s = MoeGate(nullptr, nullptr, 1, routing, nullptr, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MoeGate: routing.top_k must be in [1, 32], got 40");
  routing.top_k = 8;
  routing.num_groups = 7;
  s = MoeGate(nullptr, nullptr, 1, routing, nullptr, nullptr, nullptr);
  EXPECT_EQ(s.message(), "MoeGate: routing.num_groups must divide num_experts (256), got 7");
}

void CheckDispatch(int64_t tokens, int64_t top_k, int64_t num_experts, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> expert(0, static_cast<int32_t>(num_experts - 1));
  std::vector<int32_t> ids(tokens * top_k);
  for (int32_t& id : ids) id = expert(rng);
  std::vector<int32_t> ref_offsets(num_experts + 1), ref_sorted(ids.size());
  cpu::MoeDispatch(ids.data(), tokens, top_k, num_experts, ref_offsets.data(), ref_sorted.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_ids, DeviceBuffer<int32_t>::FromHost(ids));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_offsets, DeviceBuffer<int32_t>::Allocate(num_experts + 1));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_sorted,
                           DeviceBuffer<int32_t>::Allocate(static_cast<int64_t>(ids.size())));
  MLA_ASSERT_OK(d_offsets.Fill(0xff));
  MLA_ASSERT_OK(d_sorted.Fill(0xff));
  MLA_ASSERT_OK(MoeDispatch(d_ids.get(), tokens, top_k, num_experts, d_offsets.get(),
                            d_sorted.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<int32_t> offsets, d_offsets.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<int32_t> sorted, d_sorted.ToHost());
  std::printf("dispatch tokens=%lld top_k=%lld experts=%lld\n", static_cast<long long>(tokens),
              static_cast<long long>(top_k), static_cast<long long>(num_experts));
  EXPECT_EQ(offsets, ref_offsets);
  EXPECT_EQ(sorted, ref_sorted);
}

TEST(GpuMoeDispatch, MatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckDispatch(1, 8, 256, rng);
  CheckDispatch(3, 2, 8, rng);
  CheckDispatch(1000, 8, 256, rng);
  CheckDispatch(4097, 8, 256, rng);
  CheckDispatch(77, 6, 1024, rng);
}

// Combine of `count` rows of sorted_pairs starting at `first`, into out that already holds data.
void CheckCombine(const std::string& what, int64_t tokens, int64_t top_k, int64_t num_experts,
                  int64_t dim, int64_t expert_begin, int64_t expert_end, std::mt19937& rng) {
  // Distinct experts per token, as the gate gives.
  std::vector<int32_t> ids(tokens * top_k), pool(num_experts);
  std::iota(pool.begin(), pool.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(pool.begin(), pool.end(), rng);
    std::copy(pool.begin(), pool.begin() + top_k, ids.begin() + t * top_k);
  }
  std::vector<int32_t> offsets(num_experts + 1), sorted(ids.size());
  cpu::MoeDispatch(ids.data(), tokens, top_k, num_experts, offsets.data(), sorted.data());
  const int64_t first = offsets[expert_begin];
  const int64_t count = offsets[expert_end] - first;
  const std::vector<float> weights = testing::RandomFloats(rng, tokens * top_k, 0.05f, 1.0f);
  const std::vector<float> expert_out = testing::RandomNormals(rng, count * dim, 1.0f);
  const std::vector<float> out0 = testing::RandomNormals(rng, tokens * dim, 1.0f);
  std::vector<float> ref = out0;
  cpu::MoeCombine(expert_out.data(), sorted.data() + first, weights.data(), count, top_k, dim,
                  ref.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_expert_out, DeviceBuffer<float>::FromHost(expert_out));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_sorted, DeviceBuffer<int32_t>::FromHost(sorted));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_weights, DeviceBuffer<float>::FromHost(weights));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::FromHost(out0));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<unsigned char>::Allocate(
                                          MoeCombineWorkspaceBytes(tokens, top_k)));
  MLA_ASSERT_OK(d_ws.Fill(0x5a));  // stale workspace
  MLA_ASSERT_OK(MoeCombine(d_expert_out.get(), d_sorted.get() + first, d_weights.get(), count,
                           tokens, top_k, dim, d_ws.get(), d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());
  testing::ExpectClose(what, got, ref, {.rel_l2 = 1e-6, .atol = 0.0, .rtol = 1e-6});
  int64_t bit_mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bit_mismatches += std::memcmp(&got[i], &ref[i], sizeof(float)) != 0;
  }
  EXPECT_EQ(bit_mismatches, 0) << what << ": not bit-identical to the CPU";
}

TEST(GpuMoeCombine, MatchesCpuBitForBit) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckCombine("combine all pairs", 100, 8, 256, 1000, 0, 256, rng);
  CheckCombine("combine one rank's experts [64, 128)", 100, 8, 256, 1000, 64, 128, rng);
  CheckCombine("combine one token", 1, 8, 256, 7168, 0, 256, rng);
}

TEST(GpuMoeCombine, RejectsBadShapes) {
  absl::Status s = MoeCombine(nullptr, nullptr, nullptr, 9, 1, 8, 16, nullptr, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MoeCombine: count must be <= tokens * top_k = 8, got 9");
}

}  // namespace
}  // namespace mla::kernels::cuda
