// cuda::Add vs the host loop y[i] += x[i] (no CPU twin in kernels/ops.h: the CPU backend adds in a
// loop). One float32 add per element on both sides, so the result must be bit-identical
// (bound 0), including signed zeros, infinities and a length with a tail past a block.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

TEST(GpuAdd, MatchesHostLoopBitForBit) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t n = 3 * 7168 + 13;  // three hidden rows of V3, plus a tail
  std::vector<float> x = testing::RandomNormals(rng, n, 3.0f);
  std::vector<float> y = testing::RandomNormals(rng, n, 3.0f);
  x[0] = -0.0f;  // -0 + -0 = -0
  y[0] = -0.0f;
  x[1] = std::numeric_limits<float>::infinity();
  x[2] = 1e-30f;  // absorbed by y[2]
  y[2] = 1.0f;
  std::vector<float> ref = y;
  for (int64_t i = 0; i < n; ++i) ref[i] += x[i];

  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::FromHost(x));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::FromHost(y));
  MLA_ASSERT_OK(Add(d_x.get(), n, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_y.ToHost());
  int64_t differing = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&got[i], &ref[i], sizeof(float)) != 0 && differing++ < 5) {
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", host " << ref[i];
    }
  }
  std::printf("Add: n=%lld, %lld elements differ from the host (bound 0)\n",
              static_cast<long long>(n), static_cast<long long>(differing));
  EXPECT_EQ(differing, 0);
}

TEST(GpuAdd, AliasedInputDoubles) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t n = 1000;
  const std::vector<float> y = testing::RandomNormals(rng, n, 1.0f);
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::FromHost(y));
  MLA_ASSERT_OK(Add(d_y.get(), n, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_y.ToHost());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i], y[i] + y[i]) << "element " << i;  // doubling is exact
  }
}

}  // namespace
}  // namespace mla::kernels::cuda
