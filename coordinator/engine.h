// Engine: the coordinator's step loop. One thread owns the Scheduler and repeats
//   Schedule() -> send the Step to every worker -> wait for the StepResults -> Commit()
//   -> deliver the new tokens to the requests' sinks,
// with up to max_steps_in_flight steps in flight (the pp size: pipeline micro-batches, a sequence
// in at most one of them).
//
// RPC handlers talk to it only through Submit and Cancel, which queue work for the loop and
// return at once. Every request Submit accepts gets exactly one final call on its sink: OnUpdate
// with a finish reason, or OnError (Unavailable when the group fails or the server stops). The
// scheduler exists while the worker group is ready; when the group fails, every live request
// fails with Unavailable and a fresh scheduler (cache all free) starts when it is whole again.
//
// Threads: Submit, Cancel, StopAccepting, CancelAll, WaitIdle and Stats from any thread; sinks
// and the serving callback are called on the loop thread, without the engine's lock held.
#ifndef MLASERVE_COORDINATOR_ENGINE_H_
#define MLASERVE_COORDINATOR_ENGINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/request_validation.h"
#include "coordinator/scheduler.h"
#include "coordinator/step_wire.h"
#include "coordinator/worker_group.h"

namespace mla::coordinator {

// Where a request's results go. Called on the engine's loop thread; must not block.
class RequestSink {
 public:
  // New tokens; final when update.finish_reason != kNone.
  virtual void OnUpdate(const SequenceUpdate& update) = 0;
  // The request failed; final.
  virtual void OnError(const absl::Status& status) = 0;

 protected:
  ~RequestSink() = default;
};

struct EngineOptions {
  SchedulerOptions scheduler;                      // max_model_len, eos from the model card
  int64_t max_cache_blocks = 0;                    // cap on the group's capacity; 0 = none
  absl::Duration step_timeout = absl::Seconds(10); // a step slower than this fails the group
  absl::Duration queue_timeout = absl::Seconds(120); // waiting (not yet scheduled) longer than
                                                     // this: DEADLINE_EXCEEDED; 0 = no limit
  int max_steps_in_flight = 1;                     // micro-batches in flight: the pp size, so
                                                   // that pipeline stages do not idle
};

struct EngineStats {
  bool serving = false;             // a scheduler runs over a ready group
  std::string detail;               // why not serving
  int64_t cache_blocks_total = 0;
  int64_t cache_blocks_free = 0;
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  int64_t num_steps = 0;            // steps committed since start
  int64_t num_preemptions = 0;
  double step_loop_cpu_seconds = 0; // loop-thread CPU time spent in steps
};

class Engine {
 public:
  // `group` must outlive the engine. `on_serving` (may be empty) hears every change of
  // Stats().serving, on the loop thread.
  Engine(const EngineOptions& options, WorkerGroup* group,
         std::function<void(bool serving)> on_serving);
  ~Engine();  // Stop()

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  void Start();  // starts the loop thread
  // Ends the loop: live requests fail with Unavailable. Idempotent.
  void Stop();

  // Queues a request, writing its ticket to *ticket before the loop can see it. Unavailable if
  // not serving or no longer accepting; ResourceExhausted at once when max_num_seqs +
  // max_waiting requests are already live (the queue and its memory are bounded). On success the engine keeps `sink` until its final call.
  absl::Status Submit(ValidatedRequest request, RequestSink* sink, uint64_t* ticket);
  // Ends the request (its blocks are freed at once); its final is OnUpdate(kCancelled). No-op
  // if it already ended.
  void Cancel(uint64_t ticket);

  void StopAccepting();  // drain: refuse new requests from now on
  // Ends every live request with a final kCancelled update.
  void CancelAll();
  // Waits until no accepted request lacks its final call; false on timeout.
  bool WaitIdle(absl::Duration timeout);

  EngineStats Stats() const;

 private:
  struct Arrival {
    uint64_t ticket;
    ValidatedRequest request;
    RequestSink* sink;
  };
  struct Live {
    RequestSink* sink;
    int64_t seq_id;
    absl::Time admitted;  // for queue_timeout
  };

  void Loop();
  void DropScheduler();
  bool HasNewsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncWithGroup();
  void Admit(std::vector<Arrival> arrivals);
  void CancelTickets(const std::vector<uint64_t>& tickets);
  void ExpireWaiting();  // queue_timeout: fails requests that waited too long
  bool RunOneStep();
  bool FailStep(uint64_t wire_id, const absl::Status& status);
  void Deliver(const SequenceUpdate& update);
  void FailAll(const absl::Status& status);
  void Finalized(int64_t n);
  void Publish(bool ran_step, double cpu_seconds);

  const EngineOptions options_;
  WorkerGroup* const group_;
  const std::function<void(bool)> on_serving_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::vector<Arrival> arrivals_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancels_ ABSL_GUARDED_BY(mu_);
  bool cancel_all_ ABSL_GUARDED_BY(mu_) = false;
  bool group_changed_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t num_live_ ABSL_GUARDED_BY(mu_) = 0;  // accepted, final not yet delivered
  EngineStats stats_ ABSL_GUARDED_BY(mu_);

  // Loop thread only.
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<StepEncoder> encoder_;
  uint64_t epoch_ = 0;
  uint64_t failed_epoch_ = 0;        // the epoch whose scheduler could not start (logged once)
  int64_t preemptions_before_ = 0;   // of the schedulers dropped so far
  bool reported_serving_ = false;    // what on_serving_ heard last
  uint64_t next_wire_step_ = 1;
  std::deque<std::pair<StepPlan, uint64_t>> in_flight_;  // sent, oldest first: (plan, wire id)
  absl::flat_hash_map<uint64_t, Live> live_;        // by ticket
  absl::flat_hash_map<int64_t, uint64_t> tickets_;  // scheduler seq id -> ticket
  absl::BitGen rng_;                                // seeds for requests that give none
  absl::Time last_expiry_scan_ = absl::InfinitePast();
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_ENGINE_H_
