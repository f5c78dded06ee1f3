// BlockManager: the coordinator's account of the paged latent cache.
//
// The cache is num_blocks() blocks of kBlockSize (64) token positions; every worker of the group
// holds a pool of at least that many (the capacity is the minimum over workers), and since the
// latent cache is replicated over a stage's tensor-parallel ranks, one block id means the same
// slots on every worker. A block is either free or owned by exactly one sequence; a sequence's
// blocks are its block table, in position order. Workers never allocate: they write where the
// step's block tables say.
//
// Every mutation has a const check before it with no side effects: CanAllocate before Allocate,
// CanAppend before Append. Free returns a sequence's blocks at once; they may go to another
// sequence in the very next step (workers run steps in order, so this is safe).
//
// Not thread-safe: owned by the Scheduler and used on its thread only.
// Invariants: num_free_blocks() + num_used_blocks() == num_blocks(); no block is free and owned,
// or owned twice. Validate() checks them all.
#ifndef MLASERVE_COORDINATOR_BLOCK_MANAGER_H_
#define MLASERVE_COORDINATOR_BLOCK_MANAGER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/sequence.h"

namespace mla::coordinator {

class BlockManager {
 public:
  static constexpr int64_t kNoOwner = -1;

  // A cache of num_blocks blocks, all free. REQUIRES: 0 <= num_blocks < 2^31.
  explicit BlockManager(int64_t num_blocks);

  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  // Blocks that hold num_positions token positions: ceil(num_positions / kBlockSize).
  static int64_t BlocksForTokens(int64_t num_positions);

  int64_t num_blocks() const { return static_cast<int64_t>(owner_.size()); }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }

  // Blocks seq lacks so that its table covers num_computed_tokens() + num_new_tokens positions
  // (0 when the blocks it holds already do). REQUIRES: num_new_tokens >= 0.
  int64_t NumBlocksNeeded(const Sequence& seq, int64_t num_new_tokens) const;

  // The most new tokens seq could take now: the room in the blocks it holds plus every free
  // block. 0 when it holds no spare room and no block is free.
  int64_t MaxNewTokens(const Sequence& seq) const;

  // True if the free blocks cover NumBlocksNeeded(seq, num_new_tokens). No side effects.
  bool CanAllocate(const Sequence& seq, int64_t num_new_tokens) const;
  // Extends seq's block table to cover num_new_tokens more positions.
  // REQUIRES: CanAllocate(seq, num_new_tokens); seq is not finished.
  void Allocate(Sequence* seq, int64_t num_new_tokens);

  // Room for the one token a decode step adds. No side effects.
  bool CanAppend(const Sequence& seq) const { return CanAllocate(seq, 1); }
  // REQUIRES: CanAppend(*seq).
  void Append(Sequence* seq) { Allocate(seq, 1); }

  // Returns all of seq's blocks to the free list and empties its table. Cheap; at once.
  void Free(Sequence* seq);

  // The id of the sequence owning block, or kNoOwner. REQUIRES: 0 <= block < num_blocks().
  int64_t owner(int32_t block) const { return owner_[block]; }

  // Checks the invariants above; an Internal error names the first one broken.
  absl::Status Validate() const;

 private:
  std::vector<int32_t> free_;   // free block ids; allocation takes from the back
  std::vector<int64_t> owner_;  // [num_blocks] owning sequence id or kNoOwner
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_BLOCK_MANAGER_H_
