#include "coordinator/block_manager.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

std::unique_ptr<Sequence> MakeSeq(int64_t id, int64_t prompt_len) {
  return std::make_unique<Sequence>(id, /*arrival=*/id, std::vector<int32_t>(prompt_len, 7),
                                    GenerationParams{});
}

TEST(BlockManager, FreshCacheIsAllFree) {
  BlockManager bm(10);
  EXPECT_EQ(bm.num_blocks(), 10);
  EXPECT_EQ(bm.num_free_blocks(), 10);
  EXPECT_EQ(bm.num_used_blocks(), 0);
  for (int32_t b = 0; b < 10; ++b) EXPECT_EQ(bm.owner(b), BlockManager::kNoOwner);
  EXPECT_TRUE(bm.Validate().ok());
}

TEST(BlockManager, BlocksForTokensRoundsUp) {
  EXPECT_EQ(kBlockSize, 64);
  EXPECT_EQ(BlockManager::BlocksForTokens(0), 0);
  EXPECT_EQ(BlockManager::BlocksForTokens(1), 1);
  EXPECT_EQ(BlockManager::BlocksForTokens(63), 1);
  EXPECT_EQ(BlockManager::BlocksForTokens(64), 1);
  EXPECT_EQ(BlockManager::BlocksForTokens(65), 2);
  EXPECT_EQ(BlockManager::BlocksForTokens(129), 3);
}

TEST(BlockManager, ChecksHaveNoSideEffects) {
  BlockManager bm(2);
  auto seq = MakeSeq(1, 200);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(bm.CanAllocate(*seq, 128));
    EXPECT_FALSE(bm.CanAllocate(*seq, 129));  // 3 blocks, only 2 exist
    EXPECT_TRUE(bm.CanAppend(*seq));
    EXPECT_EQ(bm.NumBlocksNeeded(*seq, 129), 3);
    EXPECT_EQ(bm.MaxNewTokens(*seq), 128);
  }
  EXPECT_EQ(bm.num_free_blocks(), 2);
  EXPECT_TRUE(seq->block_table().empty());
}

TEST(BlockManager, AllocateCoversComputedPlusNewTokens) {
  BlockManager bm(8);
  auto seq = MakeSeq(1, 300);
  ASSERT_TRUE(bm.CanAllocate(*seq, 130));
  bm.Allocate(seq.get(), 130);
  ASSERT_EQ(seq->block_table().size(), 3u);  // positions 0..129
  EXPECT_EQ(std::set<int32_t>(seq->block_table().begin(), seq->block_table().end()).size(), 3u);
  for (int32_t b : seq->block_table()) EXPECT_EQ(bm.owner(b), 1);
  EXPECT_EQ(bm.num_free_blocks(), 5);

  seq->AdvanceComputed(130);
  EXPECT_EQ(bm.NumBlocksNeeded(*seq, 62), 0);  // positions 130..191 fit in block 2
  EXPECT_EQ(bm.NumBlocksNeeded(*seq, 63), 1);  // position 192 starts block 3
  bm.Allocate(seq.get(), 62);
  EXPECT_EQ(seq->block_table().size(), 3u);
  EXPECT_EQ(bm.num_free_blocks(), 5);
  EXPECT_TRUE(bm.Validate().ok());
}

TEST(BlockManager, AppendNeedsABlockOnlyAtABoundary) {
  BlockManager bm(1);
  auto inside = MakeSeq(1, 65);
  bm.Allocate(inside.get(), 63);
  inside->AdvanceComputed(63);
  EXPECT_EQ(bm.num_free_blocks(), 0);
  EXPECT_TRUE(bm.CanAppend(*inside));  // position 63 is still in block 0
  bm.Append(inside.get());
  EXPECT_EQ(inside->block_table().size(), 1u);
  inside->AdvanceComputed(1);

  auto other = MakeSeq(2, 10);
  EXPECT_FALSE(bm.CanAppend(*other));  // needs a block, none free
  EXPECT_EQ(bm.MaxNewTokens(*other), 0);
  bm.Free(inside.get());
  EXPECT_TRUE(bm.CanAppend(*other));
}

TEST(BlockManager, FreeReturnsEveryBlockAtOnce) {
  BlockManager bm(6);
  auto a = MakeSeq(1, 200);
  auto b = MakeSeq(2, 100);
  bm.Allocate(a.get(), 200);  // 4 blocks
  bm.Allocate(b.get(), 100);  // 2 blocks
  EXPECT_EQ(bm.num_free_blocks(), 0);
  EXPECT_FALSE(bm.CanAllocate(*MakeSeq(3, 1), 1));
  const std::vector<int32_t> a_blocks = a->block_table();
  bm.Free(a.get());
  EXPECT_TRUE(a->block_table().empty());
  EXPECT_EQ(bm.num_free_blocks(), 4);
  for (int32_t blk : a_blocks) EXPECT_EQ(bm.owner(blk), BlockManager::kNoOwner);
  for (int32_t blk : b->block_table()) EXPECT_EQ(bm.owner(blk), 2);
  EXPECT_TRUE(bm.Validate().ok());
  bm.Free(b.get());
  EXPECT_EQ(bm.num_free_blocks(), 6);
  EXPECT_TRUE(bm.Validate().ok());
}

// Random allocations and frees; after each operation every block is free or in exactly one table
// and the count adds up. Prints its seed.
TEST(BlockManager, RandomAllocateFreeKeepsInvariants) {
  constexpr uint32_t kSeed = 20240611;
  std::printf("seed %u\n", kSeed);
  std::mt19937 rng(kSeed);
  constexpr int64_t kBlocks = 50;
  BlockManager bm(kBlocks);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int64_t id = 0; id < 12; ++id) seqs.push_back(MakeSeq(id, 1000));
  int64_t allocations = 0;
  int64_t refusals = 0;
  for (int op = 0; op < 5000; ++op) {
    Sequence* seq = seqs[rng() % seqs.size()].get();
    if (rng() % 4 == 0) {
      bm.Free(seq);
      seq->ResetComputed();
    } else {
      const int64_t room = seq->num_uncomputed_tokens() - 1;
      const int64_t n = std::min<int64_t>(room, rng() % 100);
      if (bm.CanAllocate(*seq, n)) {
        bm.Allocate(seq, n);
        seq->AdvanceComputed(n);
        ++allocations;
      } else {
        EXPECT_GT(bm.NumBlocksNeeded(*seq, n), bm.num_free_blocks());
        ++refusals;
      }
    }
    ASSERT_TRUE(bm.Validate().ok()) << bm.Validate();
    int64_t in_tables = 0;
    std::set<int32_t> seen;
    for (const auto& s : seqs) {
      EXPECT_EQ(static_cast<int64_t>(s->block_table().size()),
                BlockManager::BlocksForTokens(s->num_computed_tokens()));
      for (int32_t blk : s->block_table()) {
        EXPECT_TRUE(seen.insert(blk).second) << "block " << blk << " in two tables";
        EXPECT_EQ(bm.owner(blk), s->id());
      }
      in_tables += static_cast<int64_t>(s->block_table().size());
    }
    ASSERT_EQ(in_tables + bm.num_free_blocks(), kBlocks);
  }
  EXPECT_GT(allocations, 100);
  EXPECT_GT(refusals, 10);  // the cache did run out
  for (auto& s : seqs) bm.Free(s.get());
  EXPECT_EQ(bm.num_free_blocks(), kBlocks);
}

}  // namespace
}  // namespace mla::coordinator
