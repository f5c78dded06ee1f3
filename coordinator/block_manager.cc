#include "coordinator/block_manager.h"

#include <cassert>
#include <limits>

#include "absl/strings/str_cat.h"

namespace mla::coordinator {

BlockManager::BlockManager(int64_t num_blocks) {
  assert(num_blocks >= 0 && num_blocks <= std::numeric_limits<int32_t>::max());
  owner_.assign(num_blocks, kNoOwner);
  free_.reserve(num_blocks);
  // Highest id first, so the back (the next block handed out) is block 0: ids come out in order
  // on a fresh cache, which keeps logs and tests easy to read.
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockManager::BlocksForTokens(int64_t num_positions) {
  return (num_positions + kBlockSize - 1) / kBlockSize;
}

int64_t BlockManager::NumBlocksNeeded(const Sequence& seq, int64_t num_new_tokens) const {
  assert(num_new_tokens >= 0);
  const int64_t want = BlocksForTokens(seq.num_computed_tokens() + num_new_tokens);
  const int64_t have = static_cast<int64_t>(seq.block_table().size());
  return want > have ? want - have : 0;
}

int64_t BlockManager::MaxNewTokens(const Sequence& seq) const {
  const int64_t blocks = static_cast<int64_t>(seq.block_table().size()) + num_free_blocks();
  const int64_t room = blocks * kBlockSize - seq.num_computed_tokens();
  return room > 0 ? room : 0;
}

bool BlockManager::CanAllocate(const Sequence& seq, int64_t num_new_tokens) const {
  return NumBlocksNeeded(seq, num_new_tokens) <= num_free_blocks();
}

void BlockManager::Allocate(Sequence* seq, int64_t num_new_tokens) {
  assert(CanAllocate(*seq, num_new_tokens));
  assert(seq->status() != SequenceStatus::kFinished);
  std::vector<int32_t>* table = seq->mutable_block_table();
  for (int64_t n = NumBlocksNeeded(*seq, num_new_tokens); n > 0; --n) {
    const int32_t block = free_.back();
    free_.pop_back();
    assert(owner_[block] == kNoOwner);
    owner_[block] = seq->id();
    table->push_back(block);
  }
}

void BlockManager::Free(Sequence* seq) {
  std::vector<int32_t>* table = seq->mutable_block_table();
  for (int32_t block : *table) {
    assert(owner_[block] == seq->id());
    owner_[block] = kNoOwner;
    free_.push_back(block);
  }
  table->clear();
}

absl::Status BlockManager::Validate() const {
  std::vector<bool> seen_free(owner_.size(), false);
  for (int32_t block : free_) {
    if (block < 0 || block >= num_blocks()) {
      return absl::InternalError(absl::StrCat("free list holds block ", block, " outside [0, ",
                                              num_blocks(), ")"));
    }
    if (seen_free[block]) {
      return absl::InternalError(absl::StrCat("block ", block, " is on the free list twice"));
    }
    if (owner_[block] != kNoOwner) {
      return absl::InternalError(absl::StrCat("block ", block, " is free and owned by sequence ",
                                              owner_[block]));
    }
    seen_free[block] = true;
  }
  for (int64_t b = 0; b < num_blocks(); ++b) {
    if (!seen_free[b] && owner_[b] == kNoOwner) {
      return absl::InternalError(absl::StrCat("block ", b, " is neither free nor owned (leaked)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mla::coordinator
