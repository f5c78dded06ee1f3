// PlanMlaDecode (kernels/cuda/mla_decode/plan.cc): host arithmetic, so this test runs with or
// without a GPU. Checks the invariants the kernel relies on: whole cache blocks per split, the
// splits cover the longest context with no empty trailing split, about one wave of CTAs, and
// the workspace size of plan.h's layout.
#include <algorithm>
#include <cstdint>
#include <cstdio>

#include <gtest/gtest.h>

#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {
namespace {

void ExpectCovers(const MlaDecodePlan& plan, int64_t max_context_len) {
  EXPECT_EQ(plan.keys_per_split % kBlockSize, 0);
  EXPECT_GE(plan.num_splits * plan.keys_per_split, max_context_len);
  EXPECT_LT((plan.num_splits - 1) * plan.keys_per_split, std::max<int64_t>(max_context_len, 1));
}

TEST(MlaDecodePlan, ManyTokensRunUnsplit) {
  const MlaDecodePlan plan = PlanMlaDecode(/*tokens=*/64, /*heads=*/128, /*max_context_len=*/4096,
                                           /*num_sms=*/132);
  EXPECT_EQ(plan.num_splits, 1);
  EXPECT_EQ(plan.workspace_bytes, 0);
  ExpectCovers(plan, 4096);
}

TEST(MlaDecodePlan, OneLongSequenceFillsTheGpu) {
  const MlaDecodePlan plan = PlanMlaDecode(1, 128, 32768, 132);
  const int64_t ctas = 2 * plan.num_splits;  // two head groups of 64
  std::printf("B=1 L=32768: %lld splits of %lld keys, %lld CTAs\n",
              static_cast<long long>(plan.num_splits), static_cast<long long>(plan.keys_per_split),
              static_cast<long long>(ctas));
  EXPECT_GT(ctas, 132 / 2);
  EXPECT_LE(ctas, 132);
  ExpectCovers(plan, 32768);
  EXPECT_EQ(plan.workspace_bytes,
            static_cast<int64_t>(sizeof(float)) * plan.num_splits * 1 * 128 * (512 + 2));
  EXPECT_EQ(plan.partial_out_floats(), plan.num_splits * 128 * 512);
}

TEST(MlaDecodePlan, ShortContextsNeverSplitBelowOneBlock) {
  const MlaDecodePlan plan = PlanMlaDecode(1, 16, 65, 132);
  EXPECT_EQ(plan.num_splits, 2);
  EXPECT_EQ(plan.keys_per_split, kBlockSize);
  ExpectCovers(plan, 65);
}

TEST(MlaDecodePlan, ForcedSplitSize) {
  const MlaDecodePlan plan = PlanMlaDecode(5, 128, 1000, 132, /*keys_per_split=*/192);
  EXPECT_EQ(plan.keys_per_split, 192);
  EXPECT_EQ(plan.num_splits, 6);  // ceil(16 blocks / 3)
  ExpectCovers(plan, 1000);
}

TEST(MlaDecodePlan, EmptyStep) {
  const MlaDecodePlan plan = PlanMlaDecode(0, 128, 0, 132);
  EXPECT_EQ(plan.tokens, 0);
  EXPECT_EQ(plan.num_splits, 1);
  EXPECT_EQ(plan.workspace_bytes, 0);
}

}  // namespace
}  // namespace mla::kernels::cuda
