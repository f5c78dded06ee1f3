#include "coordinator/engine.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla::coordinator {
namespace {

// How long the loop sleeps when it has nothing to do and hears no news.
constexpr absl::Duration kIdlePoll = absl::Milliseconds(200);
// Sequence ids of one group epoch live in [epoch << 40, (epoch + 1) << 40).
constexpr int kSeqIdBaseShift = 40;

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

Engine::Engine(const EngineOptions& options, WorkerGroup* group,
               std::function<void(bool serving)> on_serving)
    : options_(options), group_(group), on_serving_(std::move(on_serving)) {
  stats_.detail = "starting";
  group_->SetOnChange([this] {
    absl::MutexLock lock(&mu_);
    group_changed_ = true;
  });
}

Engine::~Engine() { Stop(); }

void Engine::Start() { thread_ = std::thread([this] { Loop(); }); }

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    accepting_ = false;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status Engine::Submit(ValidatedRequest request, RequestSink* sink, uint64_t* ticket) {
  absl::MutexLock lock(&mu_);
  if (!accepting_) return absl::UnavailableError("the server is shutting down");
  if (!stats_.serving) {
    mu_.Unlock();  // the group's account is fresher than the loop's last poll
    const std::string detail = group_->State().detail;
    mu_.Lock();
    return absl::UnavailableError(
        absl::StrCat("not serving: ", detail.empty() ? stats_.detail : detail));
  }
  const int64_t limit = options_.scheduler.max_num_seqs + options_.scheduler.max_waiting;
  if (num_live_ >= limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        num_live_, " requests are running or queued, the most this server holds (max_num_seqs ",
        options_.scheduler.max_num_seqs, " + max_waiting ", options_.scheduler.max_waiting,
        "); retry later"));
  }
  *ticket = next_ticket_++;
  arrivals_.push_back({*ticket, std::move(request), sink});
  ++num_live_;
  return absl::OkStatus();
}

void Engine::Cancel(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  cancels_.push_back(ticket);
}

void Engine::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
}

void Engine::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancel_all_ = true;
}

bool Engine::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_live_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

EngineStats Engine::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Engine::HasNewsLocked() const {
  return stop_ || group_changed_ || cancel_all_ || !arrivals_.empty() || !cancels_.empty();
}

void Engine::Loop() {
  bool busy = false;
  for (;;) {
    std::vector<Arrival> arrivals;
    std::vector<uint64_t> cancels;
    bool cancel_all = false;
    {
      absl::MutexLock lock(&mu_);
      if (!busy) mu_.AwaitWithTimeout(absl::Condition(this, &Engine::HasNewsLocked), kIdlePoll);
      if (stop_) break;
      arrivals.swap(arrivals_);
      cancels.swap(cancels_);
      std::swap(cancel_all, cancel_all_);
      group_changed_ = false;
    }
    SyncWithGroup();
    Admit(std::move(arrivals));
    CancelTickets(cancels);
    ExpireWaiting();
    if (cancel_all) {
      std::vector<uint64_t> all;
      for (const auto& [ticket, live] : live_) all.push_back(ticket);
      CancelTickets(all);
    }
    const double cpu_before = ThreadCpuSeconds();
    busy = RunOneStep();
    Publish(busy, busy ? ThreadCpuSeconds() - cpu_before : 0.0);
  }
  const absl::Status stopped = absl::UnavailableError("the coordinator stopped");
  FailAll(stopped);
  std::vector<Arrival> arrivals;
  {
    absl::MutexLock lock(&mu_);
    arrivals.swap(arrivals_);
    stats_.serving = false;
    stats_.detail = "stopped";
  }
  for (const Arrival& a : arrivals) a.sink->OnError(stopped);
  Finalized(static_cast<int64_t>(arrivals.size()));
}

void Engine::DropScheduler() {
  // The group keeps each step sent until it is awaited: await the others in flight, whose
  // results no longer matter. After a group failure each is answered at once (Unavailable).
  for (const auto& [plan, wire_id] : in_flight_) {
    group_->AwaitStepResult(wire_id, options_.step_timeout).IgnoreError();
  }
  in_flight_.clear();
  if (scheduler_ == nullptr) return;
  preemptions_before_ += scheduler_->num_preemptions();
  scheduler_.reset();
}

void Engine::SyncWithGroup() {
  const GroupState group = group_->State();
  if (scheduler_ != nullptr && (!group.ready || group.epoch != epoch_)) {
    FailAll(absl::UnavailableError(absl::StrCat("the worker group failed: ", group.detail)));
    DropScheduler();
  }
  if (scheduler_ == nullptr && group.ready) {
    int64_t blocks = group.num_cache_blocks;
    if (options_.max_cache_blocks > 0) blocks = std::min(blocks, options_.max_cache_blocks);
    absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
        Scheduler::Create(options_.scheduler, blocks);
    if (scheduler.ok()) {
      scheduler_ = std::move(*scheduler);
      epoch_ = group.epoch;
      encoder_ = std::make_unique<StepEncoder>(static_cast<int64_t>(epoch_) << kSeqIdBaseShift);
      absl::FPrintF(stderr, "mla-coordinator: serving with %d cache blocks (group epoch %d)\n",
                    blocks, epoch_);
    } else if (group.epoch != failed_epoch_) {  // once per epoch, not once per poll
      failed_epoch_ = group.epoch;
      absl::FPrintF(stderr, "mla-coordinator: cannot schedule over %d cache blocks: %s\n",
                    blocks, scheduler.status().ToString());
    }
  }
  const bool serving = scheduler_ != nullptr;
  {
    absl::MutexLock lock(&mu_);
    stats_.serving = serving;
    stats_.detail = serving ? "" : (group.ready ? "the scheduler could not start" : group.detail);
  }
  if (serving != reported_serving_ && on_serving_) on_serving_(serving);
  reported_serving_ = serving;
}

void Engine::Admit(std::vector<Arrival> arrivals) {
  for (Arrival& a : arrivals) {
    if (scheduler_ == nullptr) {
      a.sink->OnError(absl::UnavailableError("the worker group is not ready"));
      Finalized(1);
      continue;
    }
    if (!a.request.has_seed) a.request.params.sampling.seed = absl::Uniform<uint64_t>(rng_);
    absl::StatusOr<int64_t> seq_id =
        scheduler_->Add(std::move(a.request.prompt), std::move(a.request.params));
    if (!seq_id.ok()) {
      a.sink->OnError(seq_id.status());
      Finalized(1);
      continue;
    }
    live_[a.ticket] = {a.sink, *seq_id, absl::Now()};
    tickets_[*seq_id] = a.ticket;
  }
}

void Engine::CancelTickets(const std::vector<uint64_t>& tickets) {
  for (uint64_t ticket : tickets) {
    auto it = live_.find(ticket);
    if (it == live_.end() || scheduler_ == nullptr) continue;  // ended already
    absl::StatusOr<SequenceUpdate> update = scheduler_->Cancel(it->second.seq_id);
    if (update.ok()) Deliver(*update);
  }
}

void Engine::ExpireWaiting() {
  const absl::Time now = absl::Now();
  if (scheduler_ == nullptr || options_.queue_timeout <= absl::ZeroDuration() ||
      now - last_expiry_scan_ < absl::Milliseconds(100)) {
    return;
  }
  last_expiry_scan_ = now;
  std::vector<uint64_t> expired;
  for (const auto& [ticket, live] : live_) {
    const Sequence* seq = scheduler_->Find(live.seq_id);
    if (seq != nullptr && seq->status() == SequenceStatus::kWaiting &&
        now - live.admitted > options_.queue_timeout) {
      expired.push_back(ticket);
    }
  }
  for (uint64_t ticket : expired) {
    auto it = live_.find(ticket);
    const Live live = it->second;
    scheduler_->Cancel(live.seq_id).IgnoreError();  // frees its blocks; no update delivered
    live_.erase(it);
    tickets_.erase(live.seq_id);
    live.sink->OnError(absl::DeadlineExceededError(absl::StrCat(
        "waited ", absl::FormatDuration(now - live.admitted), " in the queue, longer than "
        "queue_timeout ", absl::FormatDuration(options_.queue_timeout), " (server overloaded)")));
    Finalized(1);
  }
}

// The step: three verbs (Schedule, run on the workers, Commit) and the delivery.
bool Engine::RunOneStep() {
  if (scheduler_ == nullptr) return false;
  // Keep up to max_steps_in_flight plans sent (a sequence is in at most one of them), so that
  // stage s runs one micro-batch while stage s+1 runs the previous one.
  while (static_cast<int>(in_flight_.size()) < options_.max_steps_in_flight &&
         !scheduler_->idle()) {
    StepPlan plan = scheduler_->Schedule();
    if (plan.step_id == 0) break;  // nothing more can run until a step commits
    const uint64_t wire_id = next_wire_step_++;
    v1::Step step = encoder_->Encode(plan, wire_id);
    step.set_micro_batch(static_cast<uint32_t>(wire_id % options_.max_steps_in_flight));
    if (absl::Status sent = group_->SendStep(step); !sent.ok()) return FailStep(wire_id, sent);
    in_flight_.emplace_back(std::move(plan), wire_id);
  }
  if (in_flight_.empty()) return false;
  const auto [plan, wire_id] = std::move(in_flight_.front());
  in_flight_.pop_front();
  absl::StatusOr<v1::StepResult> wire = group_->AwaitStepResult(wire_id, options_.step_timeout);
  absl::StatusOr<StepResult> result =
      wire.ok() ? encoder_->Decode(*wire, plan) : absl::StatusOr<StepResult>(wire.status());
  absl::StatusOr<std::vector<SequenceUpdate>> updates =
      result.ok() ? scheduler_->Commit(*result)
                  : absl::StatusOr<std::vector<SequenceUpdate>>(result.status());
  if (!updates.ok()) return FailStep(wire_id, updates.status());
  for (const SequenceUpdate& update : *updates) Deliver(update);
  return true;
}

bool Engine::FailStep(uint64_t wire_id, const absl::Status& status) {
  absl::FPrintF(stderr, "mla-coordinator: step %d failed: %s\n", wire_id, status.ToString());
  FailAll(absl::UnavailableError(absl::StrCat("step failed: ", status.message())));
  DropScheduler();  // rebuilt by SyncWithGroup: the workers' state is unknown
  return false;
}

void Engine::Deliver(const SequenceUpdate& update) {
  auto t = tickets_.find(update.seq_id);
  if (t == tickets_.end()) return;
  auto live = live_.find(t->second);
  RequestSink* sink = live->second.sink;
  if (update.finish_reason != FinishReason::kNone) {
    live_.erase(live);
    tickets_.erase(t);
    sink->OnUpdate(update);
    Finalized(1);
  } else {
    sink->OnUpdate(update);
  }
}

void Engine::FailAll(const absl::Status& status) {
  for (const auto& [ticket, live] : live_) live.sink->OnError(status);
  Finalized(static_cast<int64_t>(live_.size()));
  live_.clear();
  tickets_.clear();
}

void Engine::Finalized(int64_t n) {
  absl::MutexLock lock(&mu_);
  num_live_ -= n;
}

void Engine::Publish(bool ran_step, double cpu_seconds) {
  absl::MutexLock lock(&mu_);
  EngineStats& s = stats_;
  s.num_steps += ran_step ? 1 : 0;
  s.step_loop_cpu_seconds += cpu_seconds;
  if (scheduler_ == nullptr) {
    s.cache_blocks_total = s.cache_blocks_free = s.num_running = s.num_waiting = 0;
    return;
  }
  s.cache_blocks_total = scheduler_->block_manager().num_blocks();
  s.cache_blocks_free = scheduler_->block_manager().num_free_blocks();
  s.num_running = scheduler_->num_running();
  s.num_waiting = scheduler_->num_waiting();
  s.num_preemptions = preemptions_before_ + scheduler_->num_preemptions();
}

}  // namespace mla::coordinator
