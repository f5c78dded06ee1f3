// cuda::Embed vs cpu::Embed on a vocabulary shard [1000, 3000): ids inside, at both edges and
// outside (rows of zeros). Widening bf16 is exact: the outputs must be bit-identical.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

TEST(GpuEmbed, MatchesCpuBitForBit) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t vocab_begin = 1000, vocab_end = 3000, dim = 7168;
  const std::vector<bf16> table =
      testing::ToBf16(testing::RandomNormals(rng, (vocab_end - vocab_begin) * dim, 0.05f));
  std::vector<int32_t> ids = {999, 1000, 2999, 3000, 0, 129279};
  std::uniform_int_distribution<int32_t> id_dist(0, 4000);
  for (int i = 0; i < 11; ++i) ids.push_back(id_dist(rng));
  const int64_t tokens = static_cast<int64_t>(ids.size());
  std::vector<float> ref(tokens * dim);
  cpu::Embed(table.data(), ids.data(), tokens, dim, vocab_begin, vocab_end, ref.data());

  MLA_ASSERT_OK_AND_ASSIGN(auto d_table, DeviceBuffer<bf16>::FromHost(table));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ids, DeviceBuffer<int32_t>::FromHost(ids));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(tokens * dim));
  MLA_ASSERT_OK(d_out.Fill(0xff));
  MLA_ASSERT_OK(Embed(d_table.get(), d_ids.get(), tokens, dim, vocab_begin, vocab_end,
                      d_out.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, d_out.ToHost());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < tokens * dim; ++i) {
    if (std::memcmp(&got[i], &ref[i], sizeof(float)) != 0) ++mismatches;
  }
  std::printf("Embed: %lld of %lld values differ from the CPU's bits\n",
              static_cast<long long>(mismatches), static_cast<long long>(tokens * dim));
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace mla::kernels::cuda
