// cuda::MlaAbsorbQuery and cuda::MlaUnabsorbOutput (cuBLASLt per-head batched GEMMs, bf16
// operands, fp32 accumulation) vs their CPU twins, on fresh random inputs with NaN-poisoned
// outputs. Two comparisons per op (as in gpu_linear_test):
// - the CPU on the activation rounded to bf16 as the GPU rounds it: only the fp32 summation order
//   differs (k = 128 or 512 terms): relative L2 <= 1e-4, |got - ref| <= 1e-4 rms(ref) + 1e-4 |ref|;
//   q_abs's rope part is a copy and must be exact;
// - the CPU on the float activation: bf16 operands, relative L2 <= 1e-2,
//   |got - ref| <= 2e-2 rms(ref) + 2e-2 |ref|.
// Two identical calls give the same bits. Bad dims are refused with a message naming the field.
#include <cstdint>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_absorb/mla_absorb.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

MlaDims V3Dims(int64_t heads) {
  return {.heads = heads, .d_latent = 512, .d_rope = 64, .d_nope = 128, .d_v = 128};
}

std::vector<float> RoundedToBf16(const std::vector<float>& v) {
  return testing::ToFloat(testing::ToBf16(v));
}

// (heads, tokens): a TP rank's 16 heads and all 128, one decode token and a prefill chunk.
class GpuMlaAbsorbTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(GpuMlaAbsorbTest, AbsorbQueryMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  const auto [heads, tokens] = GetParam();
  const MlaDims dims = V3Dims(heads);
  std::mt19937 rng(testing::TestSeed());
  const std::vector<float> q = testing::RandomNormals(rng, tokens * heads * dims.d_qk(), 1.0f);
  const std::vector<bf16> wkv_b = testing::ToBf16(
      testing::RandomNormals(rng, heads * (dims.d_nope + dims.d_v) * dims.d_latent, 0.05f));
  // The CPU on q with its nope part rounded to bf16 (the GPU's operand) and on q itself.
  std::vector<float> q_rounded = q;
  for (int64_t r = 0; r < tokens * heads; ++r) {
    for (int64_t n = 0; n < dims.d_nope; ++n) {
      q_rounded[r * dims.d_qk() + n] = RoundToBf16(q[r * dims.d_qk() + n]);
    }
  }
  const int64_t out_size = tokens * heads * dims.d_cache();
  std::vector<float> ref_rounded(out_size), ref_exact(out_size);
  cpu::MlaAbsorbQuery(q_rounded.data(), wkv_b.data(), tokens, dims, ref_rounded.data());
  cpu::MlaAbsorbQuery(q.data(), wkv_b.data(), tokens, dims, ref_exact.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto context, MlaAbsorbContext::Create());
  MLA_ASSERT_OK_AND_ASSIGN(auto d_q, DeviceBuffer<float>::FromHost(q));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_w, DeviceBuffer<bf16>::FromHost(wkv_b));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(out_size));
  MLA_ASSERT_OK_AND_ASSIGN(
      auto d_ws, DeviceBuffer<unsigned char>::Allocate(MlaAbsorbQueryWorkspaceBytes(tokens, dims)));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(MlaAbsorbQuery(*context, d_q.get(), d_w.get(), tokens, dims, d_ws.get(),
                               d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());

  const double rms = testing::Rms(ref_rounded);
  testing::ExpectClose("MlaAbsorbQuery (same bf16 operands)", got, ref_rounded,
                       {.rel_l2 = 1e-4, .atol = 1e-4 * rms, .rtol = 1e-4});
  testing::ExpectClose("MlaAbsorbQuery (GPU-rounded q vs float q)", got, ref_exact,
                       {.rel_l2 = 1e-2, .atol = 2e-2 * rms, .rtol = 2e-2});
  int64_t rope_mismatches = 0;
  for (int64_t r = 0; r < tokens * heads; ++r) {
    for (int64_t c = dims.d_latent; c < dims.d_cache(); ++c) {
      const int64_t i = r * dims.d_cache() + c;
      rope_mismatches += std::memcmp(&got[i], &ref_exact[i], sizeof(float)) != 0;
    }
  }
  EXPECT_EQ(rope_mismatches, 0) << "q_abs's rope part must be q^R exactly";

  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(MlaAbsorbQuery(*context, d_q.get(), d_w.get(), tokens, dims, d_ws.get(),
                               d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> again, d_out.ToHost());
  EXPECT_EQ(0, std::memcmp(got.data(), again.data(), got.size() * sizeof(float)))
      << "not deterministic";
}

TEST_P(GpuMlaAbsorbTest, UnabsorbOutputMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  const auto [heads, tokens] = GetParam();
  const MlaDims dims = V3Dims(heads);
  std::mt19937 rng(testing::TestSeed());
  const std::vector<float> latent =
      testing::RandomNormals(rng, tokens * heads * dims.d_latent, 1.0f);
  const std::vector<bf16> wkv_b = testing::ToBf16(
      testing::RandomNormals(rng, heads * (dims.d_nope + dims.d_v) * dims.d_latent, 0.05f));
  const std::vector<float> latent_rounded = RoundedToBf16(latent);
  const int64_t out_size = tokens * heads * dims.d_v;
  std::vector<float> ref_rounded(out_size), ref_exact(out_size);
  cpu::MlaUnabsorbOutput(latent_rounded.data(), wkv_b.data(), tokens, dims, ref_rounded.data());
  cpu::MlaUnabsorbOutput(latent.data(), wkv_b.data(), tokens, dims, ref_exact.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto context, MlaAbsorbContext::Create());
  MLA_ASSERT_OK_AND_ASSIGN(auto d_latent, DeviceBuffer<float>::FromHost(latent));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_w, DeviceBuffer<bf16>::FromHost(wkv_b));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(out_size));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<unsigned char>::Allocate(
                                          MlaUnabsorbOutputWorkspaceBytes(tokens, dims)));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(MlaUnabsorbOutput(*context, d_latent.get(), d_w.get(), tokens, dims, d_ws.get(),
                                  d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());

  const double rms = testing::Rms(ref_rounded);
  testing::ExpectClose("MlaUnabsorbOutput (same bf16 operands)", got, ref_rounded,
                       {.rel_l2 = 1e-4, .atol = 1e-4 * rms, .rtol = 1e-4});
  testing::ExpectClose("MlaUnabsorbOutput (GPU-rounded latent vs float latent)", got, ref_exact,
                       {.rel_l2 = 1e-2, .atol = 2e-2 * rms, .rtol = 2e-2});

  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(MlaUnabsorbOutput(*context, d_latent.get(), d_w.get(), tokens, dims, d_ws.get(),
                                  d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> again, d_out.ToHost());
  EXPECT_EQ(0, std::memcmp(got.data(), again.data(), got.size() * sizeof(float)))
      << "not deterministic";
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuMlaAbsorbTest,
                         ::testing::Values(std::make_tuple(16, 1), std::make_tuple(16, 37),
                                           std::make_tuple(128, 1), std::make_tuple(128, 19)));

// Bad dims are refused before any launch, with the field named (STYLE.md F6).
TEST(GpuMlaAbsorb, RejectsBadDims) {
  MLA_SKIP_WITHOUT_GPU();
  MLA_ASSERT_OK_AND_ASSIGN(auto context, MlaAbsorbContext::Create());
  MlaDims dims = V3Dims(16);
  dims.d_nope = 100;
  absl::Status s = MlaAbsorbQuery(*context, nullptr, nullptr, 1, dims, nullptr, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "MlaAbsorbQuery: dims.d_nope must be a multiple of 8 (16-byte bf16 rows), got 100");
  dims = V3Dims(0);
  s = MlaUnabsorbOutput(*context, nullptr, nullptr, 1, dims, nullptr, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaUnabsorbOutput: dims.heads must be > 0, got 0");
  s = MlaUnabsorbOutput(*context, nullptr, nullptr, 1, V3Dims(16), nullptr, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaUnabsorbOutput: needs a 16-byte aligned workspace of 16384 bytes");
}

}  // namespace
}  // namespace mla::kernels::cuda
