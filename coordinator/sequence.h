// Sequence: one generation request as the scheduler tracks it.
//
// A sequence's tokens are its prompt followed by what it has generated. The first
// num_computed_tokens() of them are in the latent cache, in the blocks of block_table() (64
// positions per block, in order). While a sequence waits or runs, at least one token is not yet
// computed: the whole prompt before its first step, the last sampled token while it decodes, all
// of prompt + output after a preemption (which drops its cache). Preemption keeps the generated
// tokens, so a recomputed sequence continues exactly where it stopped.
//
// Not thread-safe: owned by the Scheduler and touched only on the scheduler's thread.
// Invariants: 0 <= num_computed_tokens() < num_tokens() unless FINISHED; the block table covers
// at least num_computed_tokens() positions; a WAITING sequence holds no blocks.
#ifndef MLASERVE_COORDINATOR_SEQUENCE_H_
#define MLASERVE_COORDINATOR_SEQUENCE_H_

#include <cstdint>
#include <vector>

#include "coordinator/step_plan.h"

namespace mla::coordinator {

enum class SequenceStatus { kWaiting, kRunning, kFinished };

enum class FinishReason {
  kNone,       // not finished
  kStopEos,    // sampled the model's end-of-sequence token
  kStopToken,  // sampled one of the request's stop tokens
  kLength,     // generated max_tokens
  kCancelled,  // cancelled by the client, a deadline or the server
};

const char* FinishReasonName(FinishReason reason);

// What the client asked for, besides the prompt.
struct GenerationParams {
  SamplingParams sampling;
  int64_t max_tokens = 16;              // tokens to generate at most, >= 1
  std::vector<int32_t> stop_token_ids;  // stop after sampling any of these
  bool ignore_eos = false;              // do not stop at the model's eos token
  int32_t priority = 0;                 // higher is scheduled first and preempted last
};

// What a Commit or Cancel changed for one sequence: new tokens, and the end if it ended.
struct SequenceUpdate {
  int64_t seq_id = 0;
  std::vector<int32_t> new_tokens;               // in order; the stop token included
  FinishReason finish_reason = FinishReason::kNone;
  int64_t num_prompt_tokens = 0;                 // usage, valid on every update
  int64_t num_output_tokens = 0;
};

class Sequence {
 public:
  // REQUIRES: prompt is non-empty.
  Sequence(int64_t id, uint64_t arrival, std::vector<int32_t> prompt, GenerationParams params);

  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  int64_t id() const { return id_; }
  uint64_t arrival() const { return arrival_; }  // admission order of Add(), never reused
  int32_t priority() const { return params_.priority; }
  const GenerationParams& params() const { return params_; }

  SequenceStatus status() const { return status_; }
  void set_status(SequenceStatus status) { status_ = status; }
  FinishReason finish_reason() const { return finish_reason_; }

  const std::vector<int32_t>& prompt_tokens() const { return prompt_; }
  const std::vector<int32_t>& output_tokens() const { return output_; }
  int64_t num_prompt_tokens() const { return static_cast<int64_t>(prompt_.size()); }
  int64_t num_output_tokens() const { return static_cast<int64_t>(output_.size()); }
  int64_t num_tokens() const { return num_prompt_tokens() + num_output_tokens(); }

  // Tokens at positions [begin, end) of prompt + output.
  // REQUIRES: 0 <= begin <= end <= num_tokens().
  std::vector<int32_t> Tokens(int64_t begin, int64_t end) const;

  int64_t num_computed_tokens() const { return num_computed_; }
  int64_t num_uncomputed_tokens() const { return num_tokens() - num_computed_; }
  // A step put n more tokens into the cache. REQUIRES: n >= 0, stays below num_tokens().
  void AdvanceComputed(int64_t n);
  // Preemption: the cache is gone. REQUIRES: the block table is already empty.
  void ResetComputed();

  const std::vector<int32_t>& block_table() const { return block_table_; }
  std::vector<int32_t>* mutable_block_table() { return &block_table_; }  // BlockManager only

  // True while a step that contains this sequence awaits its Commit.
  bool in_flight() const { return in_flight_; }
  void set_in_flight(bool in_flight) { in_flight_ = in_flight; }

  // Appends a sampled token (its cache entry is computed by the next step) and returns why the
  // sequence must stop now, or kNone. eos_token_id < 0 means the model has none.
  // REQUIRES: not finished.
  FinishReason AppendToken(int32_t token, int32_t eos_token_id);

  // Marks the sequence FINISHED. REQUIRES: reason != kNone; the block table is empty.
  void Finish(FinishReason reason);

  // An update carrying this sequence's usage and finish reason, without tokens.
  SequenceUpdate MakeUpdate() const;

 private:
  const int64_t id_;
  const uint64_t arrival_;
  const std::vector<int32_t> prompt_;
  const GenerationParams params_;
  std::vector<int32_t> output_;
  int64_t num_computed_ = 0;
  std::vector<int32_t> block_table_;
  SequenceStatus status_ = SequenceStatus::kWaiting;
  FinishReason finish_reason_ = FinishReason::kNone;
  bool in_flight_ = false;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_SEQUENCE_H_
