// Tests for kernels::cpu::Embed: vocab-parallel lookup, bf16 table to float32 (exact), zero rows
// for ids outside the shard. Exact comparisons: bf16 -> float conversion is exact.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

std::vector<bf16> RandomTable(int64_t rows, int64_t dim, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<bf16> t(rows * dim);
  for (bf16& v : t) v = FloatToBf16(dist(rng));
  return t;
}

TEST(Embed, InRangeRowsCopiedOutOfRangeRowsZero) {
  const uint32_t seed = 61;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t begin = 100, end = 110, dim = 7;
  const std::vector<bf16> table = RandomTable(end - begin, dim, rng);
  const std::vector<int32_t> ids = {99, 100, 105, 109, 110, -1, 5000, 100};
  const int64_t tokens = static_cast<int64_t>(ids.size());
  std::vector<float> out(tokens * dim, 123.0f);  // Garbage: every element must be written.
  Embed(table.data(), ids.data(), tokens, dim, begin, end, out.data());
  for (int64_t t = 0; t < tokens; ++t) {
    const bool owned = ids[t] >= begin && ids[t] < end;
    for (int64_t j = 0; j < dim; ++j) {
      const float expected = owned ? Bf16ToFloat(table[(ids[t] - begin) * dim + j]) : 0.0f;
      EXPECT_EQ(out[t * dim + j], expected) << "t=" << t << " j=" << j;
    }
  }
}

TEST(Embed, ShardsSumToFullLookup) {
  const uint32_t seed = 62;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int64_t vocab = 10, split = 4, dim = 5;
  const std::vector<bf16> table = RandomTable(vocab, dim, rng);
  const std::vector<int32_t> ids = {0, 3, 4, 9, 7, 3};
  const int64_t tokens = static_cast<int64_t>(ids.size());
  std::vector<float> full(tokens * dim), low(tokens * dim), high(tokens * dim);
  Embed(table.data(), ids.data(), tokens, dim, 0, vocab, full.data());
  Embed(table.data(), ids.data(), tokens, dim, 0, split, low.data());
  Embed(table.data() + split * dim, ids.data(), tokens, dim, split, vocab, high.data());
  for (int64_t k = 0; k < tokens * dim; ++k) {
    EXPECT_EQ(low[k] + high[k], full[k]) << "k=" << k;
    EXPECT_EQ(full[k], Bf16ToFloat(table[ids[k / dim] * dim + k % dim])) << "k=" << k;
  }
}

}  // namespace
}  // namespace mla::kernels::cpu
