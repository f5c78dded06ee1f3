// MlaDecodeCombine (kernels/cuda/mla_decode/combine.cu) vs a double-precision merge of random
// partial results in the slots of a plan with cut rows (plan.h: the piece of token t in lane i
// is in slot 2i if t is lane i's first token, else 2i + 1):
//   M = max_i m_i,  out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) d_i,  lse = M + ln(sum ...).
// Rows of tokens that are not cut must stay as they were (the split kernel wrote them).
// Tolerance (fp32 math): relative L2 <= 1e-5, |got - ref| <= 1e-6 * rms(ref) + 1e-5 * |ref|.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

TEST(GpuMlaDecodeCombine, MatchesDoubleMerge) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  // Rows of 1, 63, 64, 65, 1000 and 200 keys in lanes of 3 tiles: rows 4 and 5 are cut, row 4
  // over six lanes (a middle lane holds only a piece of it), row 5 at a lane's end.
  const std::vector<int32_t> q_start = {0, 1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> contexts = {1, 63, 64, 65, 1000, 200};
  const int64_t heads = 80, d = 512;
  const MlaDecodePlan plan = PlanMlaDecode(q_start, contexts, heads, 132, {.lane_keys = 192});
  ASSERT_EQ(plan.cuts.num_cuts, 2);
  const int64_t slots = plan.num_slots(), rows = plan.tokens * heads;

  std::vector<float> partial_out(slots * heads * d);
  std::vector<float> partial_state(slots * heads * 2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(1.0f, 64.0f);
  for (int64_t i = 0; i < slots * heads; ++i) {  // every slot random: unused ones must be ignored
    const float dsum = uniform(rng);
    partial_state[2 * i] = 3.0f * normal(rng);
    partial_state[2 * i + 1] = dsum;
    for (int64_t c = 0; c < d; ++c) partial_out[i * d + c] = dsum * normal(rng);
  }
  const std::vector<float> before = testing::RandomFloats(rng, rows * d, -1.0f, 1.0f);
  std::vector<float> ref_out(before), ref_lse(rows, 0.5f);
  std::vector<int64_t> cut_rows;
  for (int32_t i = 0; i < plan.cuts.num_cuts; ++i) {
    const MlaDecodeCut& cut = plan.cuts.cut[i];
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<int64_t> pieces;
      for (int32_t lane = cut.first_lane; lane <= cut.last_lane; ++lane) {
        const bool first = plan.schedule.lane_begin[lane].token == cut.token;
        pieces.push_back((2 * int64_t{lane} + (first ? 0 : 1)) * heads + h);
      }
      double big_m = -INFINITY, denom = 0.0;
      for (const int64_t p : pieces) big_m = std::fmax(big_m, partial_state[2 * p]);
      std::vector<double> acc(d, 0.0);
      for (const int64_t p : pieces) {
        const double w = std::exp(partial_state[2 * p] - big_m);
        denom += w * partial_state[2 * p + 1];
        for (int64_t c = 0; c < d; ++c) acc[c] += w * partial_out[p * d + c];
      }
      const int64_t row = cut.token * heads + h;
      for (int64_t c = 0; c < d; ++c) ref_out[row * d + c] = static_cast<float>(acc[c] / denom);
      ref_lse[row] = static_cast<float>(big_m + std::log(denom));
      cut_rows.push_back(row);
    }
  }

  std::vector<float> workspace(partial_out);
  workspace.insert(workspace.end(), partial_state.begin(), partial_state.end());
  ASSERT_EQ(static_cast<int64_t>(workspace.size() * sizeof(float)), plan.workspace_bytes);
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<float>::FromHost(workspace));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::FromHost(before));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_lse, DeviceBuffer<float>::FromHost(std::vector<float>(rows, 0.5f)));
  MLA_ASSERT_OK(MlaDecodeCombine(plan, d_ws.get(), d_out.get(), d_lse.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> out, d_out.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> lse, d_lse.ToHost());
  testing::ExpectClose("MlaDecodeCombine out", out, ref_out,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_out), .rtol = 1e-5});
  testing::ExpectClose("MlaDecodeCombine lse", lse, ref_lse,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_lse), .rtol = 1e-5});
  std::vector<bool> is_cut(rows, false);
  for (const int64_t row : cut_rows) is_cut[row] = true;
  for (int64_t row = 0; row < rows; ++row) {
    if (is_cut[row]) continue;
    EXPECT_EQ(0, std::memcmp(out.data() + row * d, before.data() + row * d, d * sizeof(float)))
        << "row " << row << " of an uncut token was overwritten";
  }
}

}  // namespace
}  // namespace mla::kernels::cuda
