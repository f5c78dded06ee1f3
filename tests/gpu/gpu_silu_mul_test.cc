// cuda::SiluMul vs cpu::SiluMul (kernels/cpu/swiglu.cc), including large |gate| (exp overflow).
// Tolerance (fp32 math; expf within 2 ulp): relative L2 <= 1e-5,
// |got - ref| <= 1e-6 * rms(ref) + 1e-5 * |ref|.
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

TEST(GpuSiluMul, MatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t n = 3 * 18432 + 17;  // three rows of V3's dense intermediate size, plus a tail
  std::vector<float> gate = testing::RandomNormals(rng, n, 4.0f);
  gate[0] = -120.0f;  // exp(-g) overflows: silu -> -0
  gate[1] = 95.0f;
  const std::vector<float> up = testing::RandomNormals(rng, n, 1.0f);
  std::vector<float> ref(n);
  cpu::SiluMul(gate.data(), up.data(), n, ref.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_gate, DeviceBuffer<float>::FromHost(gate));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_up, DeviceBuffer<float>::FromHost(up));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(n));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(SiluMul(d_gate.get(), d_up.get(), n, d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());
  testing::ExpectClose("SiluMul", got, ref,
                       {.rel_l2 = 1e-5, .atol = 1e-6 * testing::Rms(ref), .rtol = 1e-5});
}

}  // namespace
}  // namespace mla::kernels::cuda
