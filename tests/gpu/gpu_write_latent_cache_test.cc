// cuda::WriteLatentCache vs cpu::WriteLatentCache: tokens scattered to shuffled slots of a
// NaN-poisoned cache, some rows with slot -1 (padding rows, skipped). Rounding to bf16 is
// nearest-even on both sides: the whole cache (written slots and the untouched NaN ones) must be
// bit-identical.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

TEST(GpuWriteLatentCache, MatchesCpuBitForBit) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t num_blocks = 9, d_latent = 512, d_rope = 64, d_cache = d_latent + d_rope;
  const int64_t tokens = 77;
  std::vector<int64_t> all_slots(num_blocks * kBlockSize);
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  std::vector<int64_t> slots(all_slots.begin(), all_slots.begin() + tokens);
  for (int64_t t = 3; t < tokens; t += 7) slots[t] = -1;  // padding rows: not written
  const std::vector<float> latent = testing::RandomNormals(rng, tokens * d_latent, 1.0f);
  const std::vector<float> k_rope = testing::RandomNormals(rng, tokens * d_rope, 1.0f);

  const bf16 nan{0xffff};
  std::vector<bf16> ref(num_blocks * kBlockSize * d_cache, nan);
  cpu::WriteLatentCache(latent.data(), k_rope.data(), slots.data(), tokens,
                        {.data = ref.data(), .num_blocks = num_blocks, .d_latent = d_latent,
                         .d_rope = d_rope});

  MLA_ASSERT_OK_AND_ASSIGN(auto d_cache_buf, DeviceBuffer<bf16>::Allocate(ref.size()));
  MLA_ASSERT_OK(d_cache_buf.Fill(0xff));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_latent_buf, DeviceBuffer<float>::FromHost(latent));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_rope_buf, DeviceBuffer<float>::FromHost(k_rope));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_slots, DeviceBuffer<int64_t>::FromHost(slots));
  MLA_ASSERT_OK(WriteLatentCache(d_latent_buf.get(), d_rope_buf.get(), d_slots.get(), tokens,
                                 {.data = d_cache_buf.get(), .num_blocks = num_blocks,
                                  .d_latent = d_latent, .d_rope = d_rope},
                                 nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<bf16> got, d_cache_buf.ToHost());
  int64_t mismatches = 0, first = -1;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (got[i].bits != ref[i].bits && first < 0) first = static_cast<int64_t>(i);
    mismatches += got[i].bits != ref[i].bits;
  }
  std::printf("WriteLatentCache: %lld of %zu cache values differ (first at %lld)\n",
              static_cast<long long>(mismatches), ref.size(), static_cast<long long>(first));
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace mla::kernels::cuda
