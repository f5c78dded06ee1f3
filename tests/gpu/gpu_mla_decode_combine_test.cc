// MlaDecodeCombine (kernels/cuda/mla_decode/combine.cu) vs a double-precision merge of random
// split results, some splits empty (m = -inf, d = 0, like splits past a context's end):
//   M = max_s m_s,  out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) d_s,  lse = M + ln(sum ...).
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
  MlaDecodePlan plan;
  plan.tokens = 3;
  plan.heads = 80;
  plan.num_splits = 7;
  plan.keys_per_split = 128;
  const int64_t rows = plan.tokens * plan.heads, d = 512;
  std::vector<float> partial_out(plan.num_splits * rows * d);
  std::vector<float> partial_state(plan.num_splits * rows * 2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(1.0f, 64.0f);
  std::bernoulli_distribution empty(0.3);
  for (int64_t s = 0; s < plan.num_splits; ++s) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t slot = s * rows + r;
      const bool is_empty = s > 0 && empty(rng);  // split 0 always holds a key
      const float m = is_empty ? -INFINITY : 3.0f * normal(rng);
      const float dsum = is_empty ? 0.0f : uniform(rng);
      partial_state[2 * slot] = m;
      partial_state[2 * slot + 1] = dsum;
      for (int64_t c = 0; c < d; ++c) partial_out[slot * d + c] = is_empty ? 0.0f : dsum * normal(rng);
    }
  }
  std::vector<float> ref_out(rows * d), ref_lse(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double big_m = -INFINITY;
    for (int64_t s = 0; s < plan.num_splits; ++s) big_m = std::fmax(big_m, partial_state[2 * (s * rows + r)]);
    double denom = 0.0;
    std::vector<double> acc(d, 0.0);
    for (int64_t s = 0; s < plan.num_splits; ++s) {
      const int64_t slot = s * rows + r;
      if (partial_state[2 * slot] == -INFINITY) continue;
      const double w = std::exp(partial_state[2 * slot] - big_m);
      denom += w * partial_state[2 * slot + 1];
      for (int64_t c = 0; c < d; ++c) acc[c] += w * partial_out[slot * d + c];
    }
    for (int64_t c = 0; c < d; ++c) ref_out[r * d + c] = static_cast<float>(acc[c] / denom);
    ref_lse[r] = static_cast<float>(big_m + std::log(denom));
  }

  // The workspace as the split kernel leaves it: partial_out then (m, d) pairs.
  std::vector<float> workspace(partial_out);
  workspace.insert(workspace.end(), partial_state.begin(), partial_state.end());
  ASSERT_EQ(static_cast<int64_t>(workspace.size()) * 4,
            static_cast<int64_t>(sizeof(float)) * (plan.partial_out_floats() + 2 * plan.num_splits * rows));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<float>::FromHost(workspace));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(rows * d));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_lse, DeviceBuffer<float>::Allocate(rows));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(d_lse.Fill(0xff));
  MLA_ASSERT_OK(MlaDecodeCombine(plan, d_ws.get(), d_out.get(), d_lse.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> out, d_out.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> lse, d_lse.ToHost());
  testing::ExpectClose("MlaDecodeCombine out", out, ref_out,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_out), .rtol = 1e-5});
  testing::ExpectClose("MlaDecodeCombine lse", lse, ref_lse,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_lse), .rtol = 1e-5});
}

}  // namespace
}  // namespace mla::kernels::cuda
