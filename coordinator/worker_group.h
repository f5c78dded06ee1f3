// WorkerGroup: what the coordinator's step loop sees of its workers: whether the group is whole
// and loaded, its cache capacity, and a way to run one step on every rank.
//
// WorkerHub implements it over the WorkerControl streams; tests implement it with a fake that
// can delay, drop or fail steps. SendStep and AwaitStepResult are called by the step loop thread
// only, with up to pp steps in flight (pipeline micro-batches); every step whose SendStep
// returned OK must be awaited exactly once, even when its result no longer matters (the
// implementation keeps a record per step until then). State may be called from any thread.
#ifndef MLASERVE_COORDINATOR_WORKER_GROUP_H_
#define MLASERVE_COORDINATOR_WORKER_GROUP_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mla/v1/worker.pb.h"

namespace mla::coordinator {

struct GroupState {
  bool ready = false;            // every rank registered, loaded, and not failed since
  uint64_t epoch = 0;            // +1 each time the group becomes ready; workers of an older
                                 // epoch may hold stale block tables
  int64_t num_cache_blocks = 0;  // when ready: the minimum over the ranks
  std::string detail;            // when not ready: why, naming the ranks concerned
};

class WorkerGroup {
 public:
  virtual ~WorkerGroup() = default;

  virtual GroupState State() const = 0;

  // Sends `step` to every rank, in the order of earlier steps. Unavailable if not ready.
  virtual absl::Status SendStep(const v1::Step& step) = 0;

  // Waits until every rank answered step_id and returns the answer that carries the tokens (the
  // last stage's tp-rank 0). Unavailable when a rank fails meanwhile; Internal when a rank
  // reports an error; DeadlineExceeded after `timeout`. After any error the ranks concerned are
  // failed (the group is no longer ready). REQUIRES: SendStep(step with step_id) returned OK.
  virtual absl::StatusOr<v1::StepResult> AwaitStepResult(uint64_t step_id,
                                                         absl::Duration timeout) = 0;

  // `on_change` is called (from any thread, with no lock of the group held; it must not block)
  // whenever State() may have changed. Set once, before the group starts.
  virtual void SetOnChange(std::function<void()> on_change) = 0;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_WORKER_GROUP_H_
