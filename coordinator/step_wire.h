// StepEncoder: turns the scheduler's StepPlans into wire Steps (mla.v1.Step) and StepResults back.
//
// Workers keep each sequence's block table between steps, so the encoder sends only the entries
// a worker does not have yet (block_table_offset): a running sequence's table only grows, and
// when its blocks are released (finish, cancel, preemption) the plan's freed_seq_ids tell both
// sides to forget it. Sequence ids on the wire are the scheduler's plus a base, so that ids of a
// new scheduler (after the group is rebuilt) never meet a table a surviving worker still holds.
//
// Not thread-safe: owned by the step loop.
#ifndef MLASERVE_COORDINATOR_STEP_WIRE_H_
#define MLASERVE_COORDINATOR_STEP_WIRE_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/step_plan.h"
#include "mla/v1/worker.pb.h"

namespace mla::coordinator {

class StepEncoder {
 public:
  // seq_id_base: added to every sequence id on the wire.
  explicit StepEncoder(int64_t seq_id_base) : seq_id_base_(seq_id_base) {}

  // The wire form of `plan` as step `wire_step_id`. Records the tables it sent.
  v1::Step Encode(const StepPlan& plan, uint64_t wire_step_id);

  // The scheduler's form of a worker's answer to `plan` (sequence ids back to the scheduler's).
  // InvalidArgument if the answer names a sequence id below the base or carries an error.
  absl::StatusOr<StepResult> Decode(const v1::StepResult& result, const StepPlan& plan) const;

  // Forgets every table: the next step sends each one whole (after a failed step).
  void Reset() { sent_.clear(); }

  int64_t seq_id_base() const { return seq_id_base_; }
  int64_t num_tracked() const { return static_cast<int64_t>(sent_.size()); }

 private:
  const int64_t seq_id_base_;
  absl::flat_hash_map<int64_t, int64_t> sent_;  // scheduler seq id -> table entries sent
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_STEP_WIRE_H_
