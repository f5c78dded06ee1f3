// MlaDecodeCombine (kernels/cuda/mla_decode/combine.cu) vs a double-precision merge of random
// partial results in the slots of a plan with cut rows (plan.h: the piece of token t in lane i
// is in slot 2i if t is lane i's first token, else 2i + 1):
//   M = max_i m_i,  out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) d_i,  lse = M + ln(sum ...).
// The cuts are read from a device copy of the plan (DevicePlanOf), in both launch modes: plain
// (the workspace laid out for the plan's slots, one block per row) and fixed (kMaxSlots slots,
// one wave of blocks striding over the rows; also with a plan that cuts nothing). Rows of tokens
// that are not cut must stay as they were (the split kernel wrote them).
// Tolerance (fp32 math): relative L2 <= 1e-5, |got - ref| <= 1e-6 * rms(ref) + 1e-5 * |ref|.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr int64_t kD = 512;

// Fills every slot of a `slots`-slot workspace with random partials (unused slots must be
// ignored), runs the combine of `plan` (fixed: a fixed launch), and checks it against the
// double merge.
void CheckCombine(const std::string& what, const MlaDecodePlan& plan, bool fixed,
                  std::mt19937& rng) {
  const int64_t heads = plan.heads, rows = plan.tokens * heads;
  const int64_t slots = fixed ? kMaxSlots : plan.num_slots();
  std::printf("%s: %d cut rows, %lld slots, %s launch\n", what.c_str(), plan.cuts.num_cuts,
              static_cast<long long>(slots), fixed ? "fixed" : "plain");
  std::vector<float> partial_out(slots * heads * kD);
  std::vector<float> partial_state(slots * heads * 2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(1.0f, 64.0f);
  for (int64_t i = 0; i < slots * heads; ++i) {
    const float dsum = uniform(rng);
    partial_state[2 * i] = 3.0f * normal(rng);
    partial_state[2 * i + 1] = dsum;
    for (int64_t c = 0; c < kD; ++c) partial_out[i * kD + c] = dsum * normal(rng);
  }
  const std::vector<float> before = testing::RandomFloats(rng, rows * kD, -1.0f, 1.0f);
  std::vector<float> ref_out(before), ref_lse(rows, 0.5f);
  std::vector<bool> is_cut(rows, false);
  for (int32_t i = 0; i < plan.cuts.num_cuts; ++i) {
    const MlaDecodeCut& cut = plan.cuts.cut[i];
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<int64_t> pieces;  // slots from the schedule, as plan.h defines them
      for (int32_t lane = cut.first_lane; lane <= cut.last_lane; ++lane) {
        const bool first = plan.schedule.lane_begin[lane].token == cut.token;
        pieces.push_back((2 * int64_t{lane} + (first ? 0 : 1)) * heads + h);
      }
      double big_m = -INFINITY, denom = 0.0;
      for (const int64_t p : pieces) big_m = std::fmax(big_m, partial_state[2 * p]);
      std::vector<double> acc(kD, 0.0);
      for (const int64_t p : pieces) {
        const double w = std::exp(partial_state[2 * p] - big_m);
        denom += w * partial_state[2 * p + 1];
        for (int64_t c = 0; c < kD; ++c) acc[c] += w * partial_out[p * kD + c];
      }
      const int64_t row = cut.token * heads + h;
      for (int64_t c = 0; c < kD; ++c) ref_out[row * kD + c] = static_cast<float>(acc[c] / denom);
      ref_lse[row] = static_cast<float>(big_m + std::log(denom));
      is_cut[row] = true;
    }
  }

  std::vector<float> workspace(partial_out);
  workspace.insert(workspace.end(), partial_state.begin(), partial_state.end());
  const int64_t workspace_bytes = static_cast<int64_t>(workspace.size() * sizeof(float));
  ASSERT_EQ(workspace_bytes, MlaDecodeWorkspaceBytes(slots, heads));
  if (!fixed) {
    ASSERT_EQ(workspace_bytes, plan.workspace_bytes);
  }
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<float>::FromHost(workspace));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::FromHost(before));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_lse, DeviceBuffer<float>::FromHost(std::vector<float>(rows, 0.5f)));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_plan, DeviceBuffer<MlaDecodeDevicePlan>::FromHost({DevicePlanOf(plan)}));
  const MlaDecodeLaunch launch{
      .device_plan = d_plan.get(),
      .workspace = d_ws.get(),
      .workspace_bytes = workspace_bytes,
      .grid_lanes = fixed ? MlaDecodeBoundsFor(plan.tokens, heads).grid_lanes : 0};
  MLA_ASSERT_OK(MlaDecodeCombine(plan, launch, d_out.get(), d_lse.get(), nullptr));
  MLA_ASSERT_OK(CudaStatus(cudaDeviceSynchronize(), "combine"));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> out, d_out.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> lse, d_lse.ToHost());
  testing::ExpectClose(what + " out", out, ref_out,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_out), .rtol = 1e-5});
  testing::ExpectClose(what + " lse", lse, ref_lse,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_lse), .rtol = 1e-5});
  for (int64_t row = 0; row < rows; ++row) {
    if (is_cut[row]) continue;
    EXPECT_EQ(0, std::memcmp(out.data() + row * kD, before.data() + row * kD, kD * sizeof(float)))
        << what << ": row " << row << " of an uncut token was overwritten";
  }
}

TEST(GpuMlaDecodeCombine, MatchesDoubleMerge) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  // Rows of 1, 63, 64, 65, 1000 and 200 keys in lanes of 3 tiles: rows 4 and 5 are cut, row 4
  // over six lanes (a middle lane holds only a piece of it; its first piece is lane 1's second
  // token), row 5 at a lane's end.
  const std::vector<int32_t> q_start = {0, 1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> contexts = {1, 63, 64, 65, 1000, 200};
  const MlaDecodePlan plan = PlanMlaDecode(q_start, contexts, 80, 132, {.lane_keys = 192});
  ASSERT_EQ(plan.cuts.num_cuts, 2);
  CheckCombine("6 rows, 80 heads", plan, /*fixed=*/false, rng);
  CheckCombine("6 rows, 80 heads", plan, /*fixed=*/true, rng);
}

// 80 rows of 2 tiles in lanes of one tile: every row cut, 160 lanes (all kMaxSlots slots in
// use), 80 x 128 rows: more than one wave of blocks, so the fixed launch's blocks stride.
TEST(GpuMlaDecodeCombine, FixedLaunchStridesOverManyRows) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::vector<int32_t> q_start = {0}, contexts;
  for (int i = 0; i < kMaxLanes / 2; ++i) {
    q_start.push_back(q_start.back() + 1);
    contexts.push_back(128);
  }
  const MlaDecodePlan plan = PlanMlaDecode(q_start, contexts, 128, 132, {.lane_keys = 64});
  ASSERT_EQ(plan.cuts.num_cuts, kMaxLanes / 2);
  CheckCombine("80 cut rows, 128 heads", plan, /*fixed=*/true, rng);
  CheckCombine("80 cut rows, 128 heads", plan, /*fixed=*/false, rng);
}

// A fixed launch runs even when the plan cuts nothing, and then writes nothing.
TEST(GpuMlaDecodeCombine, FixedLaunchWithoutCutsTouchesNothing) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const std::vector<int32_t> q_start = {0, 1, 2, 3}, contexts = {100, 2000, 5};
  const MlaDecodePlan plan = PlanMlaDecode(q_start, contexts, 16, 132, {.lanes_are_tokens = true});
  ASSERT_EQ(plan.cuts.num_cuts, 0);
  CheckCombine("whole rows, 16 heads", plan, /*fixed=*/true, rng);
}

}  // namespace
}  // namespace mla::kernels::cuda
