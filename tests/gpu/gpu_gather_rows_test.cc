// cuda::GatherRows vs a host loop (no CPU twin in kernels/ops.h: the CPU backend copies rows in a
// loop, the same function). A copy, so the result must be exact (bound 0). Cases: the MoE's
// gather (pair index / top_k, repeated and unordered tokens), divisor 1, a dim that is not a
// multiple of 4 (the scalar path), a misaligned base (the scalar path with dim % 4 == 0), and
// count 0 (nothing written).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

std::vector<float> HostGather(const std::vector<float>& x, const std::vector<int32_t>& index,
                              int64_t divisor, int64_t dim, int64_t x_offset) {
  std::vector<float> out(index.size() * dim);
  for (size_t j = 0; j < index.size(); ++j) {
    for (int64_t c = 0; c < dim; ++c) {
      out[j * dim + c] = x[x_offset + (index[j] / divisor) * dim + c];
    }
  }
  return out;
}

// Gathers `count` rows of a [rows, dim] matrix that starts x_offset floats into its buffer.
void CheckGather(std::mt19937& rng, int64_t rows, int64_t dim, int64_t count, int64_t divisor,
                 int64_t x_offset) {
  SCOPED_TRACE(::testing::Message() << "rows " << rows << " dim " << dim << " count " << count
                                  << " divisor " << divisor << " x_offset " << x_offset);
  const std::vector<float> x = testing::RandomNormals(rng, x_offset + rows * dim, 1.0f);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(rows * divisor - 1));
  std::vector<int32_t> index(count);
  for (int32_t& i : index) i = pick(rng);
  const std::vector<float> ref = HostGather(x, index, divisor, dim, x_offset);

  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::FromHost(x));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_index, DeviceBuffer<int32_t>::FromHost(index));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(count * dim + 1));
  MLA_ASSERT_OK(d_out.Fill(0xff));  // NaN, and one guard element past the end
  MLA_ASSERT_OK(GatherRows(d_x.get() + x_offset, d_index.get(), count, divisor, dim, d_out.get(),
                           nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());
  EXPECT_TRUE(std::isnan(got.back())) << "wrote past count * dim";
  got.pop_back();
  int64_t differing = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::memcmp(&got[i], &ref[i], sizeof(float)) != 0 && differing++ < 5) {
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", host " << ref[i];
    }
  }
  std::printf("GatherRows: %zu values, %lld differ from the host loop (bound 0)\n", ref.size(),
              static_cast<long long>(differing));
  EXPECT_EQ(differing, 0);
}

TEST(GpuGatherRows, MatchesHostLoop) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckGather(rng, /*rows=*/37, /*dim=*/7168, /*count=*/300, /*divisor=*/8, /*x_offset=*/0);
  CheckGather(rng, 5, 256, 1, 1, 0);
  CheckGather(rng, 64, 250, 77, 2, 0);   // dim % 4 != 0: scalar path
  CheckGather(rng, 19, 128, 40, 3, 1);   // x 4 bytes past an aligned base: scalar path
  CheckGather(rng, 3, 7, 70000, 1, 0);   // more rows than the grid: the grid-stride loop
}

TEST(GpuGatherRows, NothingToGatherWritesNothing) {
  MLA_SKIP_WITHOUT_GPU();
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(4));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(GatherRows(nullptr, nullptr, 0, 1, 4, d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());
  for (float v : got) EXPECT_TRUE(std::isnan(v));
}

TEST(GpuGatherRows, BadDivisorIsRefused) {
  const absl::Status s = GatherRows(nullptr, nullptr, 1, 0, 4, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("divisor must be positive, got 0"), std::string::npos) << s;
}

}  // namespace
}  // namespace mla::kernels::cuda
