// PlanMlaDecode (kernels/cuda/mla_decode/plan.cc): host arithmetic, so this test runs with or
// without a GPU. Checks the invariants the kernel and the combine rely on, by walking every
// lane as the kernel does (plan.h): each tile of each query row is covered exactly once, lanes
// are non-empty and at most kMaxLanes, a token is whole in one lane or listed as cut over
// exactly the lanes that hold it (first_slot naming its piece in the first of them), slots
// (2 lane, 2 lane + 1) are used at most once, the workspace matches plan.h's layout, and every
// plan fits the fixed launch's bounds (MlaDecodeBoundsFor) for its token count. Also the shapes
// the cost model picks for the benchmark's cases on 132 SMs, and the device copy of a plan.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {
namespace {

struct Step {
  std::vector<int32_t> q_start = {0};
  std::vector<int32_t> context_lens;
};

Step Uniform(int32_t batch, int32_t context, int32_t q_len = 1) {
  Step s;
  for (int32_t b = 0; b < batch; ++b) {
    s.q_start.push_back(s.q_start.back() + q_len);
    s.context_lens.push_back(context);
  }
  return s;
}

Step Ragged(const std::vector<int32_t>& contexts) {
  Step s;
  for (const int32_t c : contexts) {
    s.q_start.push_back(s.q_start.back() + 1);
    s.context_lens.push_back(c);
  }
  return s;
}

// Walks the plan as the kernel does and checks the invariants above; returns the largest
// number of tiles in one lane.
int64_t CheckPlan(const Step& step, const MlaDecodePlan& plan) {
  const std::vector<int32_t> tiles = MlaDecodeTokenTiles(step.q_start, step.context_lens);
  const MlaDecodeSchedule& s = plan.schedule;
  EXPECT_EQ(plan.tokens, static_cast<int64_t>(tiles.size()));
  EXPECT_EQ(s.head_groups, (plan.heads + 63) / 64);
  std::vector<int64_t> covered(tiles.size(), 0);
  std::map<int32_t, std::vector<int32_t>> lanes_of_cut_token;  // from the walk
  std::set<int64_t> slots;
  int64_t max_lane = 0;
  if (s.lanes_are_tokens) {
    EXPECT_EQ(s.num_lanes, plan.tokens);
    EXPECT_EQ(plan.cuts.num_cuts, 0);
    EXPECT_EQ(plan.workspace_bytes, 0);
    EXPECT_LE(s.num_lanes, MlaDecodeBoundsFor(plan.tokens, plan.heads).grid_lanes);
    return tiles.empty() ? 0 : *std::max_element(tiles.begin(), tiles.end());
  }
  EXPECT_GE(s.num_lanes, 1);
  EXPECT_LE(s.num_lanes, kMaxLanes);
  EXPECT_EQ(s.lane_begin[s.num_lanes].token, plan.tokens);
  EXPECT_EQ(s.lane_begin[s.num_lanes].tile, 0);
  for (int32_t lane = 0; lane < s.num_lanes; ++lane) {
    const MlaDecodeTilePos begin = s.lane_begin[lane], end = s.lane_begin[lane + 1];
    int64_t lane_tiles = 0;
    for (int32_t t = begin.token; t < end.token || (t == end.token && end.tile > 0); ++t) {
      const int32_t tb = t == begin.token ? begin.tile : 0;
      const int32_t te = t == end.token ? end.tile : tiles[t];
      EXPECT_LT(tb, te) << "empty piece: lane " << lane << " token " << t;
      EXPECT_LE(te, tiles[t]);
      covered[t] += te - tb;
      lane_tiles += te - tb;
      if (tb != 0 || te != tiles[t]) {
        lanes_of_cut_token[t].push_back(lane);
        const int64_t slot = 2 * int64_t{lane} + (t == begin.token ? 0 : 1);
        EXPECT_TRUE(slots.insert(slot).second) << "slot " << slot << " used twice";
        EXPECT_LT(slot, plan.num_slots());
      }
    }
    EXPECT_GT(lane_tiles, 0) << "lane " << lane;
    max_lane = std::max(max_lane, lane_tiles);
  }
  for (size_t t = 0; t < tiles.size(); ++t) EXPECT_EQ(covered[t], tiles[t]) << "token " << t;
  EXPECT_EQ(plan.cuts.num_cuts, static_cast<int32_t>(lanes_of_cut_token.size()));
  for (int32_t i = 0; i < plan.cuts.num_cuts; ++i) {
    const MlaDecodeCut& cut = plan.cuts.cut[i];
    EXPECT_TRUE(lanes_of_cut_token.count(cut.token)) << "token " << cut.token << " is not cut";
    if (!lanes_of_cut_token.count(cut.token)) continue;
    const std::vector<int32_t>& lanes = lanes_of_cut_token[cut.token];
    EXPECT_EQ(cut.first_lane, lanes.front());
    EXPECT_EQ(cut.last_lane, lanes.back());
    const bool first = s.lane_begin[cut.first_lane].token == cut.token;
    EXPECT_EQ(cut.first_slot, 2 * cut.first_lane + (first ? 0 : 1)) << "token " << cut.token;
    for (int32_t lane = cut.first_lane + 1; lane <= cut.last_lane; ++lane) {
      EXPECT_EQ(s.lane_begin[lane].token, cut.token) << "a later lane must begin inside the cut";
    }
    EXPECT_EQ(static_cast<int64_t>(lanes.size()), cut.last_lane - cut.first_lane + 1);
  }
  const int64_t states = plan.num_slots() * plan.heads;
  EXPECT_EQ(plan.workspace_bytes,
            plan.cuts.num_cuts > 0 ? static_cast<int64_t>(sizeof(float)) * states * (512 + 2) : 0);
  // Any plan fits a fixed launch bounded by its token count (mla_decode.h).
  const MlaDecodeLaunchBounds bounds = MlaDecodeBoundsFor(plan.tokens, plan.heads);
  EXPECT_LE(s.num_lanes, bounds.grid_lanes);
  EXPECT_LE(plan.num_slots(), kMaxSlots);
  EXPECT_LE(plan.cuts.num_cuts, kMaxLanes - 1);
  EXPECT_LE(plan.workspace_bytes, bounds.workspace_bytes);
  return max_lane;
}

TEST(MlaDecodePlan, UniformBatchThatFillsTheGpuRunsWhole) {
  const Step step = Uniform(64, 4096);
  const MlaDecodePlan plan = PlanMlaDecode(step.q_start, step.context_lens, 128, 132);
  EXPECT_TRUE(plan.schedule.lanes_are_tokens);
  EXPECT_EQ(plan.schedule.num_lanes, 64);
  CheckPlan(step, plan);
  // Two waves of whole rows (3% quantisation) beat 65 cuts and a combine.
  const Step big = Uniform(128, 8192);
  EXPECT_TRUE(PlanMlaDecode(big.q_start, big.context_lens, 128, 132).schedule.lanes_are_tokens);
  // Two query rows per sequence: whole rows, so a sequence's rows share its blocks in L2.
  const Step two = Uniform(64, 4096, 2);
  const MlaDecodePlan plan2 = PlanMlaDecode(two.q_start, two.context_lens, 128, 132);
  EXPECT_TRUE(plan2.schedule.lanes_are_tokens);
  CheckPlan(two, plan2);
}

TEST(MlaDecodePlan, OneLongContextSpreadsOverEverySm) {
  const Step step = Uniform(1, 32768);
  const MlaDecodePlan plan = PlanMlaDecode(step.q_start, step.context_lens, 128, 132);
  EXPECT_FALSE(plan.schedule.lanes_are_tokens);
  EXPECT_EQ(plan.schedule.num_lanes, 66);  // x 2 head groups = 132 CTAs
  EXPECT_EQ(plan.cuts.num_cuts, 1);
  EXPECT_EQ(plan.cuts.cut[0].first_lane, 0);
  EXPECT_EQ(plan.cuts.cut[0].last_lane, 65);
  const int64_t max_lane = CheckPlan(step, plan);
  std::printf("B=1 L=32768: %d lanes, at most %lld tiles each\n", plan.schedule.num_lanes,
              static_cast<long long>(max_lane));
  EXPECT_LE(max_lane, 8);  // 512 tiles / 66
}

TEST(MlaDecodePlan, RaggedBatchIsBalanced) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> length(1, 8192);
  std::vector<int32_t> contexts(64);
  for (int32_t& c : contexts) c = length(rng);
  const Step step = Ragged(contexts);
  const MlaDecodePlan plan = PlanMlaDecode(step.q_start, step.context_lens, 128, 132);
  const std::vector<int32_t> tiles = MlaDecodeTokenTiles(step.q_start, step.context_lens);
  const int64_t total = std::accumulate(tiles.begin(), tiles.end(), int64_t{0});
  const int64_t longest = *std::max_element(tiles.begin(), tiles.end());
  const int64_t max_lane = CheckPlan(step, plan);
  std::printf("ragged B=64: %lld tiles, longest row %lld, %d lanes of at most %lld, %d cuts\n",
              static_cast<long long>(total), static_cast<long long>(longest),
              plan.schedule.num_lanes, static_cast<long long>(max_lane), plan.cuts.num_cuts);
  EXPECT_FALSE(plan.schedule.lanes_are_tokens);
  EXPECT_LE(max_lane, (total + 65) / 66);
  EXPECT_LT(max_lane, longest);
}

TEST(MlaDecodePlan, FewerHeadsUseOneCtaPerLane) {
  for (int64_t heads : {64, 32, 16}) {
    const Step step = Uniform(128, 4096);
    const MlaDecodePlan plan = PlanMlaDecode(step.q_start, step.context_lens, heads, 132);
    EXPECT_EQ(plan.schedule.head_groups, 1);
    EXPECT_TRUE(plan.schedule.lanes_are_tokens) << heads;
    CheckPlan(step, plan);
  }
}

// Lanes of a fixed size cross row boundaries: whole rows in the middle of a lane, cut rows at
// its ends (the kernel's multi-piece walk and both slots of a lane).
TEST(MlaDecodePlan, FixedLaneSizeCutsAcrossRows) {
  const Step step = Ragged({1, 63, 64, 65, 1000});  // tiles 1 1 1 2 16
  const MlaDecodePlan plan =
      PlanMlaDecode(step.q_start, step.context_lens, 128, 132, {.lane_keys = 192});
  ASSERT_FALSE(plan.schedule.lanes_are_tokens);
  EXPECT_EQ(plan.schedule.num_lanes, 7);  // ceil(21 / 3)
  EXPECT_EQ(plan.schedule.lane_begin[0].token, 0);
  EXPECT_EQ(plan.schedule.lane_begin[1].token, 3);  // tokens 0, 1, 2 whole in lane 0
  EXPECT_EQ(plan.schedule.lane_begin[2].token, 4);
  EXPECT_EQ(plan.schedule.lane_begin[2].tile, 1);   // lane 1: token 3, then token 4's tile 0
  EXPECT_EQ(plan.cuts.num_cuts, 1);
  EXPECT_EQ(plan.cuts.cut[0].token, 4);
  EXPECT_EQ(plan.cuts.cut[0].first_lane, 1);
  EXPECT_EQ(plan.cuts.cut[0].last_lane, 6);
  CheckPlan(step, plan);

  const MlaDecodePlan one_lane =
      PlanMlaDecode(step.q_start, step.context_lens, 80, 132, {.lane_keys = 1 << 20});
  EXPECT_EQ(one_lane.schedule.num_lanes, 1);
  EXPECT_EQ(one_lane.cuts.num_cuts, 0);
  CheckPlan(step, one_lane);

  const MlaDecodePlan tiles =
      PlanMlaDecode(step.q_start, step.context_lens, 16, 132, {.lane_keys = 64});
  EXPECT_EQ(tiles.schedule.num_lanes, 21);
  CheckPlan(step, tiles);
  const MlaDecodePlan whole =
      PlanMlaDecode(step.q_start, step.context_lens, 16, 132, {.lanes_are_tokens = true});
  EXPECT_TRUE(whole.schedule.lanes_are_tokens);
  CheckPlan(step, whole);
}

TEST(MlaDecodePlan, TooManySmallLanesGrow) {
  const Step step = Uniform(3, 64 * 200);  // 600 tiles
  const MlaDecodePlan plan =
      PlanMlaDecode(step.q_start, step.context_lens, 128, 132, {.lane_keys = 64});
  EXPECT_LE(plan.schedule.num_lanes, kMaxLanes);
  CheckPlan(step, plan);
}

TEST(MlaDecodePlan, MultiRowSequencesAndEmptyOnes) {
  Step step;
  step.q_start = {0, 3, 3, 5, 6};
  step.context_lens = {5, 0, 130, 64};
  EXPECT_EQ(MlaDecodeTokenTiles(step.q_start, step.context_lens),
            (std::vector<int32_t>{1, 1, 1, 3, 3, 1}));  // keys 3 4 5 129 130 64
  for (int64_t keys : {0, 64, 128}) {
    CheckPlan(step, PlanMlaDecode(step.q_start, step.context_lens, 80, 132, {.lane_keys = keys}));
  }
}

// The device copy holds the schedule and the cuts byte for byte, in a block the kernels load
// with 8- and 16-byte accesses; the bounds cover the largest grids and workspaces.
TEST(MlaDecodePlan, DevicePlanAndLaunchBounds) {
  static_assert(alignof(MlaDecodeDevicePlan) == 16 && sizeof(MlaDecodeDevicePlan) % 16 == 0);
  static_assert(alignof(MlaDecodeTilePos) == 8 && sizeof(MlaDecodeCut) == 16);
  const Step step = Ragged({1, 63, 64, 65, 1000});
  const MlaDecodePlan plan =
      PlanMlaDecode(step.q_start, step.context_lens, 80, 132, {.lane_keys = 192});
  const MlaDecodeDevicePlan device = DevicePlanOf(plan);
  EXPECT_EQ(device.schedule.num_lanes, plan.schedule.num_lanes);
  EXPECT_EQ(device.schedule.lanes_are_tokens, plan.schedule.lanes_are_tokens);
  for (int32_t lane = 0; lane <= plan.schedule.num_lanes; ++lane) {
    EXPECT_EQ(device.schedule.lane_begin[lane].token, plan.schedule.lane_begin[lane].token);
    EXPECT_EQ(device.schedule.lane_begin[lane].tile, plan.schedule.lane_begin[lane].tile);
  }
  ASSERT_EQ(device.cuts.num_cuts, plan.cuts.num_cuts);
  for (int32_t i = 0; i < plan.cuts.num_cuts; ++i) {
    EXPECT_EQ(device.cuts.cut[i].token, plan.cuts.cut[i].token);
    EXPECT_EQ(device.cuts.cut[i].first_slot, plan.cuts.cut[i].first_slot);
  }

  EXPECT_EQ(MlaDecodeBoundsFor(64, 128).grid_lanes, kMaxLanes);
  EXPECT_EQ(MlaDecodeBoundsFor(0, 128).grid_lanes, kMaxLanes);
  EXPECT_EQ(MlaDecodeBoundsFor(500, 128).grid_lanes, 500);  // one lane per row may be chosen
  EXPECT_EQ(MlaDecodeBoundsFor(64, 128).workspace_bytes, int64_t{4} * kMaxSlots * 128 * (512 + 2));
  EXPECT_EQ(MlaDecodeWorkspaceBytes(0, 128), 0);
  // The most lanes a plan can have (160 lanes of one tile: every slot of the bound in use) and
  // more tokens than kMaxLanes, one lane each: both within their bounds (CheckPlan).
  const Step pairs = Uniform(kMaxLanes / 2, 128);
  const MlaDecodePlan most =
      PlanMlaDecode(pairs.q_start, pairs.context_lens, 128, 132, {.lane_keys = 64});
  EXPECT_EQ(most.schedule.num_lanes, kMaxLanes);
  EXPECT_EQ(most.num_slots(), kMaxSlots);
  EXPECT_EQ(most.workspace_bytes, MlaDecodeBoundsFor(most.tokens, 128).workspace_bytes);
  CheckPlan(pairs, most);
  const Step many = Uniform(500, 64 * 3);
  const MlaDecodePlan rows =
      PlanMlaDecode(many.q_start, many.context_lens, 128, 132, {.lanes_are_tokens = true});
  EXPECT_EQ(rows.schedule.num_lanes, 500);
  CheckPlan(many, rows);
}

TEST(MlaDecodePlan, EmptyStep) {
  const Step step;
  const MlaDecodePlan plan = PlanMlaDecode(step.q_start, step.context_lens, 128, 132);
  EXPECT_EQ(plan.tokens, 0);
  EXPECT_EQ(plan.schedule.num_lanes, 0);
  EXPECT_EQ(plan.workspace_bytes, 0);
}

}  // namespace
}  // namespace mla::kernels::cuda
