// cuda::WriteLatentCache (RmsNorm + RoPE + the bf16 write, fused) on kv rows of fresh random
// values, positions up to 2^18, tokens scattered to shuffled slots of a NaN-poisoned cache, some
// rows with slot -1 (padding rows, skipped):
// - against the GPU's own RmsNorm and ApplyRope kernels run separately on the same rows, then
//   rounded on the host: bit-identical (the fused kernel repeats their arithmetic exactly);
// - against cpu::WriteLatentCache: every value within one bf16 step of the CPU's (RmsNorm's
//   summation order and the device's cosf/sinf differ from the CPU's in the last float bits,
//   which can move a rounding to the neighbouring bf16), the unwritten slots untouched (NaN
//   bits), and most values bit-identical (> 99%).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
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

TEST(GpuWriteLatentCache, MatchesSeparateKernelsBitForBitAndCpuWithinOneBf16Step) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const int64_t num_blocks = 9, d_latent = 512, d_rope = 64, d_cache = d_latent + d_rope;
  const int64_t tokens = 77;
  std::vector<int64_t> all_slots(num_blocks * kBlockSize);
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  std::vector<int64_t> slots(all_slots.begin(), all_slots.begin() + tokens);
  for (int64_t t = 3; t < tokens; t += 7) slots[t] = -1;  // padding rows: not written
  const std::vector<float> kv = testing::RandomNormals(rng, tokens * d_cache, 1.0f);
  const std::vector<float> weight = testing::RandomNormals(rng, d_latent, 1.0f);
  std::vector<float> inv_freq(d_rope / 2);
  for (int64_t i = 0; i < d_rope / 2; ++i) inv_freq[i] = std::pow(1e4f, -2.0f * i / d_rope);
  std::vector<int32_t> positions(tokens);
  std::uniform_int_distribution<int32_t> pos_dist(0, 1 << 18);
  for (int32_t& p : positions) p = pos_dist(rng);
  const float eps = 1e-6f, scale = 1.07f;

  const bf16 nan{0xffff};
  std::vector<bf16> ref(num_blocks * kBlockSize * d_cache, nan);
  const LatentWrite host_in{.kv = kv.data(), .norm_weight = weight.data(), .eps = eps,
                            .positions = positions.data(), .inv_freq = inv_freq.data(),
                            .cos_sin_scale = scale, .slots = slots.data(), .tokens = tokens};
  cpu::WriteLatentCache(host_in, {.data = ref.data(), .num_blocks = num_blocks,
                                  .d_latent = d_latent, .d_rope = d_rope});

  MLA_ASSERT_OK_AND_ASSIGN(auto d_cache_buf, DeviceBuffer<bf16>::Allocate(ref.size()));
  MLA_ASSERT_OK(d_cache_buf.Fill(0xff));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_kv, DeviceBuffer<float>::FromHost(kv));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_weight, DeviceBuffer<float>::FromHost(weight));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_freq, DeviceBuffer<float>::FromHost(inv_freq));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_pos, DeviceBuffer<int32_t>::FromHost(positions));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_slots, DeviceBuffer<int64_t>::FromHost(slots));
  LatentWrite in = host_in;
  in.kv = d_kv.get();
  in.norm_weight = d_weight.get();
  in.positions = d_pos.get();
  in.inv_freq = d_freq.get();
  in.slots = d_slots.get();
  MLA_ASSERT_OK(WriteLatentCache(in, {.data = d_cache_buf.get(), .num_blocks = num_blocks,
                                      .d_latent = d_latent, .d_rope = d_rope},
                                 nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<bf16> got, d_cache_buf.ToHost());

  // The separate kernels, in place on a copy of kv: RmsNorm of each row's latent part (rows
  // d_cache apart: one row at a time), ApplyRope of the rope parts (row stride d_cache).
  MLA_ASSERT_OK_AND_ASSIGN(auto d_sep, DeviceBuffer<float>::FromHost(kv));
  for (int64_t t = 0; t < tokens; ++t) {
    MLA_ASSERT_OK(RmsNorm(d_sep.get() + t * d_cache, d_weight.get(), 1, d_latent, eps,
                          d_sep.get() + t * d_cache, nullptr));
  }
  MLA_ASSERT_OK(ApplyRope(d_sep.get() + d_latent, tokens, 1, d_cache, d_rope, d_pos.get(),
                          d_freq.get(), d_rope, scale, nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> sep, d_sep.ToHost());

  int64_t vs_separate = 0, vs_cpu = 0, beyond_one_step = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int64_t slot = static_cast<int64_t>(i) / d_cache, c = static_cast<int64_t>(i) % d_cache;
    const auto t = std::find(slots.begin(), slots.end(), slot) - slots.begin();
    if (t == tokens) {  // not written
      ASSERT_EQ(got[i].bits, nan.bits) << "slot " << slot << " was written";
      continue;
    }
    vs_separate += got[i].bits != FloatToBf16(sep[t * d_cache + c]).bits;
    vs_cpu += got[i].bits != ref[i].bits;
    beyond_one_step += std::abs(static_cast<int>(got[i].bits) - static_cast<int>(ref[i].bits)) > 1;
  }
  const int64_t written = std::count_if(slots.begin(), slots.end(), [](int64_t s) { return s >= 0; });
  std::printf("WriteLatentCache: %lld values written; vs the separate kernels %lld differ; vs the "
              "CPU %lld differ by one bf16 step, %lld by more\n",
              static_cast<long long>(written * d_cache), static_cast<long long>(vs_separate),
              static_cast<long long>(vs_cpu - beyond_one_step),
              static_cast<long long>(beyond_one_step));
  EXPECT_EQ(vs_separate, 0);
  EXPECT_EQ(beyond_one_step, 0);
  EXPECT_LT(vs_cpu, written * d_cache / 100);
}

}  // namespace
}  // namespace mla::kernels::cuda
