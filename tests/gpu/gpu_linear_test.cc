// cuda::Linear (cuBLASLt, bf16 x bf16 -> fp32) vs cpu::Linear, and cuda::CastToBf16.
// - Same operands (x already bf16-exact): only the fp32 summation order differs. The CPU's own
//   sequential fp32 sum over in = 7168 is off by ~5e-6 relative, so the bound is relative L2
//   <= 1e-4 and |got - ref| <= 1e-4 * rms(ref) + 1e-4 * |ref|.
// - float x cast on the GPU (CastToBf16) vs the CPU on the unrounded x: bf16 operands, relative
//   L2 <= 1e-2, |got - ref| <= 2e-2 * rms(ref) + 2e-2 * |ref|.
// - LinearBf16Out (the same GEMM, y rounded once to bf16) vs cpu::Linear on the same operands:
//   the rounding moves a value by at most half a bf16 ulp, <= 2^-8 |y| (3.9e-3; 8 significant
//   bits), on top of the summation order: |got - ref| <= 1e-4 * rms(ref) + 4e-3 * |ref|, and
//   relative L2 <= 3e-3 (the rounding error is ~1.7e-3 relative rms).
// - CastToBf16 vs FloatToBf16: bit-identical.
#include <cstdint>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

// (rows, in, out): decode (1, 64 rows) and prefill-ish shapes of V3's projections.
class GpuLinearTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(GpuLinearTest, MatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  const auto [rows, in, out] = GetParam();
  std::mt19937 rng(testing::TestSeed());
  const std::vector<float> x = testing::RandomNormals(rng, rows * in, 1.0f);
  const std::vector<bf16> w = testing::ToBf16(testing::RandomNormals(rng, out * in, 0.02f));
  const std::vector<bf16> x_bf16 = testing::ToBf16(x);
  const std::vector<float> x_rounded = testing::ToFloat(x_bf16);
  std::vector<float> ref_rounded(rows * out), ref_exact(rows * out);
  cpu::Linear(x_rounded.data(), w.data(), rows, in, out, ref_rounded.data());
  cpu::Linear(x.data(), w.data(), rows, in, out, ref_exact.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto context, LinearContext::Create());
  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::FromHost(x));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_xb, DeviceBuffer<bf16>::Allocate(rows * in));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_w, DeviceBuffer<bf16>::FromHost(w));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::Allocate(rows * out));

  // CastToBf16 == FloatToBf16.
  MLA_ASSERT_OK(d_xb.Fill(0xff));
  MLA_ASSERT_OK(CastToBf16(d_x.get(), rows * in, d_xb.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<bf16> xb, d_xb.ToHost());
  int64_t cast_mismatches = 0;
  for (size_t i = 0; i < xb.size(); ++i) cast_mismatches += xb[i].bits != x_bf16[i].bits;
  EXPECT_EQ(cast_mismatches, 0) << "CastToBf16 differs from FloatToBf16";

  // Linear on the cast activations.
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(Linear(*context, d_xb.get(), d_w.get(), rows, in, out, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y, d_y.ToHost());
  const double rms = testing::Rms(ref_rounded);
  testing::ExpectClose("Linear (same bf16 operands)", y, ref_rounded,
                       {.rel_l2 = 1e-4, .atol = 1e-4 * rms, .rtol = 1e-4});
  testing::ExpectClose("Linear (GPU-rounded x vs float x)", y, ref_exact,
                       {.rel_l2 = 1e-2, .atol = 2e-2 * rms, .rtol = 2e-2});

  // A second call reuses the cached plan: the same bits.
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(Linear(*context, d_xb.get(), d_w.get(), rows, in, out, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y2, d_y.ToHost());
  EXPECT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * sizeof(float))) << "not deterministic";

  // LinearBf16Out: the same GEMM rounded to bf16 (its own cached plan beside Linear's).
  MLA_ASSERT_OK_AND_ASSIGN(auto d_yb, DeviceBuffer<bf16>::Allocate(rows * out));
  MLA_ASSERT_OK(d_yb.Fill(0xff));
  MLA_ASSERT_OK(
      LinearBf16Out(*context, d_xb.get(), d_w.get(), rows, in, out, d_yb.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<bf16> yb, d_yb.ToHost());
  testing::ExpectClose("LinearBf16Out (same bf16 operands)", testing::ToFloat(yb), ref_rounded,
                       {.rel_l2 = 3e-3, .atol = 1e-4 * rms, .rtol = 4e-3});
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuLinearTest,
                         ::testing::Values(std::make_tuple(1, 7168, 1536),
                                           std::make_tuple(64, 7168, 576),
                                           std::make_tuple(17, 1536, 3072),
                                           std::make_tuple(3, 2048, 7168)));

}  // namespace
}  // namespace mla::kernels::cuda
