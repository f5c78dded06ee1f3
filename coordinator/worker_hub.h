// WorkerHub: the coordinator's WorkerControl service and the membership of its worker group.
//
// The group has tp_size x pp_size ranks (rank = stage * tp_size + tp_rank). A worker's first
// message, Register, gets it a rank: the one it asks for if free, else the lowest free one; a
// worker whose config hash differs from the coordinator's checkpoint is refused. Once every rank
// is taken, each newly registered worker gets its Assignment (stage, layer range, peers) and
// LoadModel; when every rank reports Loaded the group is ready and its capacity is the minimum of
// their cache blocks. A rank whose stream breaks, who stays silent past the heartbeat timeout, or
// who fails or misses a step is failed: the group stops being ready and the rank is free for a
// new worker; every other connected rank is sent Reset (drop the model, communicators and cache)
// and waits, registered, for the group's re-formation: once every rank is held again, all of
// them get a new Assignment (a new rendezvous key prefix) and LoadModel. Ranks missing after
// worker_wait are logged by number, and State().detail names them. Each step sent is kept until
// its one AwaitStepResult (owed even when its result no longer matters); when a rank fails, every
// step in flight is answered at once with Unavailable, blaming no other rank (survivors Reset).
//
// Threads: Connect (one WorkerConnection per stream; tests call the ConnectionListener methods
// with fake WorkerLinks) and the ConnectionListener calls run on gRPC's library threads and never
// block; SendStep/AwaitStepResult on the step loop; State, Workers from any thread; a monitor
// thread (Start/Stop) checks heartbeats and missing ranks. Lock order: hub, then a connection's;
// no connection method is called with the hub's lock held.
#ifndef MLASERVE_COORDINATOR_WORKER_HUB_H_
#define MLASERVE_COORDINATOR_WORKER_HUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/layer_ranges.h"
#include "coordinator/model_card.h"
#include "coordinator/worker_connection.h"
#include "coordinator/worker_group.h"
#include "mla/v1/inference.pb.h"

namespace mla::coordinator {

struct HubOptions {
  int32_t tp_size = 1;                                   // ranks per pipeline stage
  int32_t pp_size = 1;                                   // pipeline stages
  ModelCard model;                                       // checkpoint path, hash, layer count
  int64_t num_cache_blocks = 0;                          // LoadModel's; 0 = what fits
  absl::Duration worker_wait = absl::Seconds(60);        // then log the missing ranks
  absl::Duration heartbeat_timeout = absl::Seconds(6);   // silent this long = failed
  // Hears the store key prefix of a formation that lost a rank, and why (with the hub's lock
  // held: it must not call the hub); the coordinator abandons the prefix in its store.
  std::function<void(const std::string& prefix, const std::string& why)> on_abandon;
};

class WorkerHub final : public v1::WorkerControl::CallbackService,
                        public WorkerGroup,
                        public ConnectionListener {
 public:
  // InvalidArgument if tp/pp do not fit the model.
  static absl::StatusOr<std::unique_ptr<WorkerHub>> Create(const HubOptions& options);
  ~WorkerHub() override;  // Stop()

  void Start();  // the monitor thread
  void Stop();

  // WorkerControl (library threads).
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // ConnectionListener.
  void OnMessage(WorkerLink* conn, const v1::WorkerMessage& message) override;
  void OnClosed(WorkerLink* conn, const std::string& why) override;

  // WorkerGroup.
  GroupState State() const override;
  absl::Status SendStep(const v1::Step& step) override;
  absl::StatusOr<v1::StepResult> AwaitStepResult(uint64_t step_id,
                                                 absl::Duration timeout) override;
  void SetOnChange(std::function<void()> on_change) override { on_change_ = std::move(on_change); }
  // `on_step_time` hears every rank's StepResult.elapsed_ms, with the hub's lock held: it must be
  // quick and must not call the hub. Set once, before Start.
  void SetOnStepTime(std::function<void(int32_t rank, double ms)> on_step_time) {
    on_step_time_ = std::move(on_step_time);
  }

  // One entry per rank, in rank order; a rank nobody holds has state UNSPECIFIED.
  std::vector<v1::WorkerStatus> Workers() const;
  int64_t NumPendingSteps() const;  // steps sent and not yet awaited

  // Sends Shutdown to every worker and waits up to `timeout` for them to acknowledge or leave.
  // Returns the number that did neither. Refuses registrations from then on.
  int ShutdownWorkers(const std::string& reason, absl::Duration timeout);

 private:
  struct Slot {
    WorkerLink* conn = nullptr;        // a reference is held while set
    v1::Register reg;
    v1::WorkerState state = v1::WORKER_STATE_UNSPECIFIED;
    int64_t cache_blocks = 0;
    std::string error;                 // why it failed, for State().detail
    absl::Time last_seen;
  };
  struct PendingStep {
    std::set<int> waiting;             // ranks that have not answered
    v1::StepResult result;             // the sampling rank's answer
    absl::Status error;                // the first failure
    int error_rank = -1;               // the rank that reported it, if one did
    absl::Status peer_error;           // the first collective failure a rank reported: the
    int peer_error_rank = -1;          // faulty peer is looked for among the others first
  };
  using Outbox = std::vector<std::pair<WorkerLink*, v1::CoordinatorMessage>>;
  explicit WorkerHub(const HubOptions& options, std::vector<LayerRange> ranges);

  void RegisterLocked(WorkerLink* conn, const v1::Register& reg, Outbox* out,
                      std::vector<std::pair<WorkerLink*, absl::Status>>* refuse)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoadedLocked(int rank, const v1::Loaded& loaded) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks a rank failed; returns its connection (reference passed to the caller) or nullptr.
  // The other assigned ranks go back to REGISTERED and are queued in resets_ for a Reset.
  WorkerLink* FailLocked(int rank, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendResets() ABSL_LOCKS_EXCLUDED(mu_);  // sends the queued Resets
  int RankOfLocked(const WorkerLink* conn) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string DetailLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Assignment AssignmentLocked(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Monitor();
  static std::string RankList(const std::vector<int>& ranks);  // "rank 1" / "ranks 1, 3"
  void Changed() { if (on_change_) on_change_(); }

  const HubOptions options_;
  const std::vector<LayerRange> ranges_;  // per stage
  const int world_size_;
  const absl::Time start_;
  std::function<void()> on_change_;
  std::function<void(int32_t, double)> on_step_time_;  // per-worker step times (metrics)
  std::thread monitor_;

  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);  // by rank
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t formations_ ABSL_GUARDED_BY(mu_) = 0;  // group formations so far (store key prefix)
  absl::Time incomplete_since_ ABSL_GUARDED_BY(mu_);  // when a rank was last missing
  absl::Time last_missing_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<uint64_t, PendingStep> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<WorkerLink*, std::string>> resets_ ABSL_GUARDED_BY(mu_);  // Ref'd
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_WORKER_HUB_H_
