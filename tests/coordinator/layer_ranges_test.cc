// SplitLayers: contiguous, covering, as even as possible, the remainder on the middle stages and
// then the first, never on the last (which also runs the lm_head).
#include "coordinator/layer_ranges.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

std::vector<int64_t> Sizes(int64_t layers, int64_t pp) {
  auto ranges = SplitLayers(layers, pp);
  EXPECT_TRUE(ranges.ok()) << ranges.status();
  std::vector<int64_t> sizes;
  for (const LayerRange& r : *ranges) sizes.push_back(r.size());
  return sizes;
}

TEST(LayerRanges, KnownSplits) {
  EXPECT_EQ(Sizes(4, 1), (std::vector<int64_t>{4}));
  EXPECT_EQ(Sizes(4, 2), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(Sizes(61, 2), (std::vector<int64_t>{31, 30}));          // DeepSeek-V3, pp=2
  EXPECT_EQ(Sizes(61, 4), (std::vector<int64_t>{15, 16, 15, 15}));  // the middle takes it
  EXPECT_EQ(Sizes(10, 4), (std::vector<int64_t>{2, 3, 3, 2}));
  EXPECT_EQ(Sizes(11, 4), (std::vector<int64_t>{3, 3, 3, 2}));      // then the first stage
  EXPECT_EQ(Sizes(3, 3), (std::vector<int64_t>{1, 1, 1}));
  auto ranges = SplitLayers(61, 4);
  ASSERT_TRUE(ranges.ok());
  EXPECT_EQ((*ranges)[1].begin, 15);
  EXPECT_EQ((*ranges)[1].end, 31);
}

TEST(LayerRanges, EveryShapeIsContiguousEvenAndLightestLast) {
  for (int64_t layers = 1; layers <= 70; ++layers) {
    for (int64_t pp = 1; pp <= std::min<int64_t>(layers, 9); ++pp) {
      auto ranges = SplitLayers(layers, pp);
      ASSERT_TRUE(ranges.ok()) << layers << " / " << pp;
      ASSERT_EQ(static_cast<int64_t>(ranges->size()), pp);
      int64_t next = 0, lo = layers, hi = 0;
      for (const LayerRange& r : *ranges) {
        EXPECT_EQ(r.begin, next) << layers << " / " << pp;
        EXPECT_GE(r.size(), 1);
        next = r.end;
        lo = std::min(lo, r.size());
        hi = std::max(hi, r.size());
      }
      EXPECT_EQ(next, layers);
      EXPECT_LE(hi - lo, 1) << layers << " / " << pp;
      EXPECT_EQ(ranges->back().size(), lo) << "the last stage is never the heavier";
    }
  }
}

TEST(LayerRanges, RefusesImpossibleSplits) {
  for (auto [layers, pp] : std::vector<std::pair<int64_t, int64_t>>{{4, 0}, {4, 5}, {4, -1}}) {
    auto ranges = SplitLayers(layers, pp);
    ASSERT_FALSE(ranges.ok());
    EXPECT_EQ(ranges.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(ranges.status().message().find("pp is"), std::string::npos)
        << ranges.status().message();
  }
}

}  // namespace
}  // namespace mla::coordinator
