// cuda::ApplyRope vs cpu::ApplyRope on a q-shaped buffer [tokens, heads, 192] whose last 64
// values per head are rotated, with V3's YaRN frequencies and positions up to 160k.
// Tolerance (fp32 math; cosf/sinf within 2 ulp of the CPU's libm, FMA contraction): relative
// L2 <= 1e-5, |got - ref| <= 1e-6 * rms(ref) + 1e-5 * |ref|. Untouched (nope) values must be
// bit-identical.
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

TEST(GpuApplyRope, MatchesCpuOnQueryLayout) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const RopeConfig config{.rope_dim = 64, .theta = 10000.0, .factor = 40.0,
                          .original_max_position = 4096, .beta_fast = 32.0, .beta_slow = 1.0,
                          .mscale = 1.0, .mscale_all_dim = 1.0};
  const std::vector<float> inv_freq = cpu::YarnInverseFrequencies(config);
  const int64_t tokens = 37, heads = 16, d_nope = 128, d_qk = 192;
  std::vector<int32_t> positions(tokens);
  std::uniform_int_distribution<int32_t> pos_dist(0, 163840);
  for (int32_t& p : positions) p = pos_dist(rng);
  positions[0] = 0;
  const std::vector<float> q = testing::RandomNormals(rng, tokens * heads * d_qk, 1.0f);
  const float cos_sin_scale = 1.0f;

  std::vector<float> ref = q;
  cpu::ApplyRope(ref.data() + d_nope, tokens, heads, heads * d_qk, d_qk, positions.data(),
                 inv_freq.data(), config.rope_dim, cos_sin_scale);

  MLA_ASSERT_OK_AND_ASSIGN(auto d_q, DeviceBuffer<float>::FromHost(q));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_pos, DeviceBuffer<int32_t>::FromHost(positions));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_freq, DeviceBuffer<float>::FromHost(inv_freq));
  MLA_ASSERT_OK(ApplyRope(d_q.get() + d_nope, tokens, heads, heads * d_qk, d_qk, d_pos.get(),
                          d_freq.get(), config.rope_dim, cos_sin_scale, nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_q.ToHost());

  std::vector<float> got_rope, ref_rope;
  int64_t nope_mismatches = 0;
  for (int64_t i = 0; i < tokens * heads * d_qk; ++i) {
    if (i % d_qk >= d_nope) {
      got_rope.push_back(got[i]);
      ref_rope.push_back(ref[i]);
    } else if (got[i] != q[i]) {
      ++nope_mismatches;
    }
  }
  testing::ExpectClose("ApplyRope", got_rope, ref_rope,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref_rope), .rtol = 1e-5});
  EXPECT_EQ(nope_mismatches, 0) << "values outside the rope slices changed";
}

}  // namespace
}  // namespace mla::kernels::cuda
