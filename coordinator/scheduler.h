// Scheduler: iteration-level continuous batching over the paged latent cache.
//
// A step is three verbs: Schedule() decides a StepPlan, the workers run it, Commit() applies the
// sampled tokens. Each Schedule() is one iteration over all sequences:
//   1. running sequences with one uncomputed token (decodes), one token each;
//   2. running sequences with more (chunked prefill, or recompute after a preemption), in chunks;
//   3. waiting sequences, admitted while a running slot (max_num_seqs), token budget
//      (max_num_batched_tokens) and free blocks for their first chunk remain. Strictly in queue
//      order: the first one that does not fit stops admission (no overtaking).
// Both queues are ordered by priority (higher first), then arrival (earlier first). When a running
// sequence finds no block for its next token, the worst-ranked running sequence not yet in this
// plan and not in flight is preempted: its blocks are freed, its computed count reset to 0, and
// it rejoins the waiting queue at its rank (ahead of every later arrival of its priority); its
// prompt + generated tokens are recomputed later and sampling resumes at the same sample_index, so
// the output is the same as without the preemption. A step that preempted admits nobody. Entries
// already planned are never taken back, so a chunk that finds no room after worse-ranked decodes
// took the last blocks may preempt itself. Add() refuses requests longer than the whole cache, so
// the best-ranked sequence can always make progress once the others are preempted.
//
// With pp_size > 1 several plans may be in flight; a sequence is in at most one of them and is
// skipped until that plan's Commit (or Abandon). Blocks freed by Cancel or a finish may be reused
// by the next plan at once: workers run steps in step_id order.
//
// Not thread-safe: one thread (the coordinator's step loop) calls every method; Add and Cancel
// from RPC handlers are posted to that thread.
#ifndef MLASERVE_COORDINATOR_SCHEDULER_H_
#define MLASERVE_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/block_manager.h"
#include "coordinator/sequence.h"
#include "coordinator/step_plan.h"

namespace mla::coordinator {

struct SchedulerOptions {
  int64_t max_num_batched_tokens = 2048;  // tokens per step, decodes and chunks together, >= 1
  int64_t max_num_seqs = 256;             // running sequences at most, >= 1
  int64_t max_waiting = 1024;             // Add() beyond this many waiting: ResourceExhausted
  int64_t max_model_len = 0;              // prompt + max_tokens at most; 0 = only the cache limits
  int32_t eos_token_id = -1;              // the model's end-of-sequence token; -1 = none
};

class Scheduler {
 public:
  // InvalidArgument if an option is out of range. num_cache_blocks: the group's capacity.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerOptions& options,
                                                           int64_t num_cache_blocks);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its sequence id (unique, never reused).
  // InvalidArgument: empty prompt, negative token, max_tokens < 1, sampling out of range, or
  // longer than max_model_len / the whole cache. ResourceExhausted: max_waiting are waiting.
  absl::StatusOr<int64_t> Add(std::vector<int32_t> prompt, GenerationParams params);

  // Decides the next step; it is in flight until Commit or Abandon with its step_id. A plan with
  // no seqs (nothing can run now) is not a step: step_id 0, no freed_seq_ids (they stay pending
  // for the next real plan), nothing to send and nothing to Commit.
  StepPlan Schedule();

  // Applies a step's sampled tokens: advances the cache counts, appends tokens, finishes the
  // sequences that hit a stop condition (freeing their blocks at once). Returns one update per
  // sampled sequence still alive when the result came (cancelled ones are skipped).
  // NotFound: no such step in flight. InvalidArgument: seq_ids differ from the plan's sampled
  // sequences, or a token is negative; nothing changes then.
  absl::StatusOr<std::vector<SequenceUpdate>> Commit(const StepResult& result);

  // Forgets an in-flight step without applying it (its workers failed); its sequences keep their
  // state and are scheduled again. NotFound if no such step is in flight.
  absl::Status Abandon(uint64_t step_id);

  // Ends a waiting or running sequence now (client cancel, deadline) and frees its blocks.
  // Returns its final update (reason kCancelled). NotFound if it is unknown or already finished.
  absl::StatusOr<SequenceUpdate> Cancel(int64_t seq_id);

  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_in_flight_steps() const { return static_cast<int64_t>(in_flight_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }  // since construction
  bool idle() const { return waiting_.empty() && running_.empty(); }
  const BlockManager& block_manager() const { return blocks_; }
  // The live (waiting or running) sequence with this id, or nullptr.
  const Sequence* Find(int64_t seq_id) const;

  // Checks every invariant across the queues, the sequences and the block manager: each block
  // in exactly one place, tables covering the computed tokens, queue and in-flight bookkeeping.
  absl::Status CheckInvariants() const;

 private:
  // Queue order: priority high to low, then arrival early to late.
  struct Rank {
    bool operator()(const Sequence* a, const Sequence* b) const;
  };
  // One sequence of an in-flight plan.
  struct Planned {
    int64_t seq_id;
    int64_t num_tokens;
    bool sample;
  };

  Scheduler(const SchedulerOptions& options, int64_t num_cache_blocks);

  // Plans the running sequences of one phase (decodes or chunks), preempting if need be.
  void ScheduleRunning(bool decodes, int64_t* budget, StepPlan* plan, bool* preempted);
  // Preempts the worst-ranked running sequence not in flight (sequences already in the plan
  // being built are in flight too). Returns false if there is none.
  bool PreemptOne();
  // Adds `seq`'s next num_tokens (blocks already allocated) to the plan.
  void AddToPlan(Sequence* seq, int64_t num_tokens, StepPlan* plan);
  // Frees a running sequence's blocks and takes it off the running set.
  void Release(Sequence* seq);

  const SchedulerOptions options_;
  BlockManager blocks_;
  absl::flat_hash_map<int64_t, std::unique_ptr<Sequence>> seqs_;  // waiting and running
  std::set<Sequence*, Rank> waiting_;
  std::set<Sequence*, Rank> running_;
  absl::flat_hash_map<uint64_t, std::vector<Planned>> in_flight_;  // by step_id
  std::vector<int64_t> freed_since_plan_;  // for the next plan's freed_seq_ids
  int64_t next_seq_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t next_step_id_ = 1;
  int64_t num_preemptions_ = 0;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_SCHEDULER_H_
