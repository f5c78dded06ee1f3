// cuda::RmsNorm / cuda::AddRmsNorm vs their CPU twins (kernels/cpu/rms_norm.cc).
// Tolerance (fp32 math; only the order of the sum of squares differs): relative L2 <= 1e-5 and
// |got - ref| <= 1e-6 * rms(ref) + 1e-5 * |ref| per element.
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

using testing::ExpectClose;
using testing::RandomFloats;
using testing::RandomNormals;
using testing::Tolerance;

Tolerance Fp32(const std::vector<float>& ref) {
  return {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref), .rtol = 1e-5};
}

class GpuRmsNormTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(GpuRmsNormTest, MatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t rows = 7, dim = GetParam();
  const float eps = 1e-6f;
  const std::vector<float> x = RandomNormals(rng, rows * dim, 3.0f);
  const std::vector<float> w = RandomFloats(rng, dim, 0.5f, 1.5f);
  std::vector<float> ref(rows * dim);
  cpu::RmsNorm(x.data(), w.data(), rows, dim, eps, ref.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::FromHost(x));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_w, DeviceBuffer<float>::FromHost(w));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::Allocate(rows * dim));
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(RmsNorm(d_x.get(), d_w.get(), rows, dim, eps, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y, d_y.ToHost());
  ExpectClose("RmsNorm", y, ref, Fp32(ref));

  // In place (y aliases x).
  MLA_ASSERT_OK(RmsNorm(d_x.get(), d_w.get(), rows, dim, eps, d_x.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y_in_place, d_x.ToHost());
  ExpectClose("RmsNorm in place", y_in_place, ref, Fp32(ref));
}

TEST_P(GpuRmsNormTest, AddRmsNormMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t rows = 5, dim = GetParam();
  const float eps = 1e-6f;
  const std::vector<float> residual = RandomNormals(rng, rows * dim, 2.0f);
  const std::vector<float> delta = RandomNormals(rng, rows * dim, 1.0f);
  const std::vector<float> w = RandomFloats(rng, dim, 0.5f, 1.5f);
  std::vector<float> ref_residual = residual, ref_y(rows * dim);
  cpu::AddRmsNorm(ref_residual.data(), delta.data(), w.data(), rows, dim, eps, ref_y.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_res, DeviceBuffer<float>::FromHost(residual));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_delta, DeviceBuffer<float>::FromHost(delta));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_w, DeviceBuffer<float>::FromHost(w));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::Allocate(rows * dim));
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(AddRmsNorm(d_res.get(), d_delta.get(), d_w.get(), rows, dim, eps, d_y.get(),
                           nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> res, d_res.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y, d_y.ToHost());
  ExpectClose("AddRmsNorm residual", res, ref_residual, Fp32(ref_residual));
  ExpectClose("AddRmsNorm y", y, ref_y, Fp32(ref_y));

  // y aliasing delta: the same results.
  MLA_ASSERT_OK(d_res.CopyFromHost(residual));
  MLA_ASSERT_OK(AddRmsNorm(d_res.get(), d_delta.get(), d_w.get(), rows, dim, eps, d_delta.get(),
                           nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y_alias, d_delta.ToHost());
  ExpectClose("AddRmsNorm y aliasing delta", y_alias, ref_y, Fp32(ref_y));
}

// V3's row widths (hidden 7168, q latent 1536, kv latent 512) and an odd one.
INSTANTIATE_TEST_SUITE_P(Dims, GpuRmsNormTest, ::testing::Values(7168, 1536, 512, 1001));

}  // namespace
}  // namespace mla::kernels::cuda
