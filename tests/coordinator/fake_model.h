// FakeModel: a deterministic stand-in for the workers, for scheduler tests.
//
// It keeps a paged "cache" of token ids, kBlockSize slots per block, and runs a StepPlan the way
// the model would: it first writes every new token of every sequence into the slot its block
// table names, then, for each sequence that samples, reads the whole context [0, end) back
// through the block table and returns NextToken(context). So a wrong block table, a block shared
// by two live sequences, or a recompute that skips a token changes the output. Each slot also
// remembers which sequence wrote it; reading another sequence's slot is a test failure. It also
// keeps each sequence's block table between steps, as a worker does, and checks the plan allows
// that (see CheckTableExtendsKnown).
//
// Test-only; single-threaded.
#ifndef MLASERVE_TESTS_COORDINATOR_FAKE_MODEL_H_
#define MLASERVE_TESTS_COORDINATOR_FAKE_MODEL_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "coordinator/sequence.h"
#include "coordinator/step_plan.h"
#include "gtest/gtest.h"

namespace mla::coordinator::testing {

// The "model": a hash of every token so far, folded into [0, vocab).
inline int32_t NextToken(const std::vector<int32_t>& context, int32_t vocab) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (int32_t t : context) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  return static_cast<int32_t>((h >> 17) % static_cast<uint64_t>(vocab));
}

// What the scheduler must produce for one request with no pressure at all: the model applied
// token by token until a stop condition.
inline std::vector<int32_t> ReferenceOutput(const std::vector<int32_t>& prompt,
                                            const GenerationParams& params, int32_t eos,
                                            int32_t vocab, FinishReason* reason) {
  std::vector<int32_t> context = prompt;
  std::vector<int32_t> out;
  while (true) {
    const int32_t t = NextToken(context, vocab);
    context.push_back(t);
    out.push_back(t);
    const auto& stops = params.stop_token_ids;
    if (!params.ignore_eos && t == eos) {
      *reason = FinishReason::kStopEos;
    } else if (std::find(stops.begin(), stops.end(), t) != stops.end()) {
      *reason = FinishReason::kStopToken;
    } else if (static_cast<int64_t>(out.size()) >= params.max_tokens) {
      *reason = FinishReason::kLength;
    } else {
      continue;
    }
    return out;
  }
}

class FakeModel {
 public:
  FakeModel(int64_t num_blocks, int32_t vocab)
      : vocab_(vocab), slots_(num_blocks * kBlockSize, Slot{-1, -1}) {}

  StepResult Run(const StepPlan& plan) {
    StepResult result;
    result.step_id = plan.step_id;
    for (int64_t id : plan.freed_seq_ids) known_tables_.erase(id);
    for (const SequenceStep& s : plan.seqs) {
      CheckTableExtendsKnown(s);
      const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
      EXPECT_FALSE(s.tokens.empty()) << "seq " << s.seq_id;
      EXPECT_EQ(static_cast<int64_t>(s.block_table.size()), (end + kBlockSize - 1) / kBlockSize)
          << "seq " << s.seq_id << " start " << s.start_pos << " n " << s.tokens.size();
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        *SlotAt(s, s.start_pos + static_cast<int64_t>(i)) = Slot{s.seq_id, s.tokens[i]};
      }
    }
    for (const SequenceStep& s : plan.seqs) {
      if (!s.sample) continue;
      const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
      std::vector<int32_t> context;
      for (int64_t pos = 0; pos < end; ++pos) {
        const Slot& slot = *SlotAt(s, pos);
        EXPECT_EQ(slot.seq_id, s.seq_id) << "seq " << s.seq_id << " position " << pos
                                         << " reads a slot it never wrote";
        context.push_back(slot.token);
      }
      result.seq_ids.push_back(s.seq_id);
      result.tokens.push_back(NextToken(context, vocab_));
    }
    return result;
  }

 private:
  // What a worker that keeps block tables between steps relies on (so the wire may carry only
  // appended entries): a live sequence's blocks never change, and a sequence the worker does not
  // know (new, or released by freed_seq_ids) starts at position 0.
  void CheckTableExtendsKnown(const SequenceStep& s) {
    auto it = known_tables_.find(s.seq_id);
    if (it == known_tables_.end()) {
      EXPECT_EQ(s.start_pos, 0) << "seq " << s.seq_id << " resumes without its block table";
      known_tables_[s.seq_id] = s.block_table;
      return;
    }
    std::vector<int32_t>& known = it->second;
    const size_t common = std::min(known.size(), s.block_table.size());
    EXPECT_TRUE(std::equal(known.begin(), known.begin() + common, s.block_table.begin()))
        << "seq " << s.seq_id << " changed blocks it already had";
    if (s.block_table.size() > known.size()) known = s.block_table;
  }

  struct Slot {
    int64_t seq_id;
    int32_t token;
  };
  Slot* SlotAt(const SequenceStep& s, int64_t pos) {
    const size_t index = static_cast<size_t>(pos / kBlockSize);
    const int64_t block = index < s.block_table.size() ? s.block_table[index] : -1;
    if (block < 0 || (block + 1) * kBlockSize > static_cast<int64_t>(slots_.size())) {
      ADD_FAILURE() << "seq " << s.seq_id << " position " << pos << " has no valid block";
      scratch_ = Slot{-1, -1};
      return &scratch_;
    }
    return &slots_[block * kBlockSize + pos % kBlockSize];
  }

  int32_t vocab_;
  std::vector<Slot> slots_;
  std::map<int64_t, std::vector<int32_t>> known_tables_;  // by seq_id, as a worker keeps them
  Slot scratch_{-1, -1};
};

}  // namespace mla::coordinator::testing

#endif  // MLASERVE_TESTS_COORDINATOR_FAKE_MODEL_H_
