// WorkerHub's background work and group-wide messages: the monitor thread (heartbeat timeouts,
// missing ranks), the Resets that follow a failure, and ShutdownWorkers.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/worker_hub.h"

namespace mla::coordinator {
namespace {

constexpr absl::Duration kMonitorPeriod = absl::Milliseconds(250);

void Log(const std::string& line) { absl::FPrintF(stderr, "mla-coordinator: %s\n", line); }

}  // namespace

void WorkerHub::SendResets() {
  std::vector<std::pair<WorkerLink*, std::string>> resets;
  {
    absl::MutexLock lock(&mu_);
    resets.swap(resets_);
  }
  for (auto& [conn, why] : resets) {
    v1::CoordinatorMessage message;
    message.mutable_reset()->set_reason(why);
    conn->Send(message);
    conn->Unref();
  }
}

int WorkerHub::ShutdownWorkers(const std::string& reason, absl::Duration timeout) {
  std::vector<WorkerLink*> targets;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    ready_ = false;
    for (Slot& s : slots_) {
      if (s.conn == nullptr) continue;
      s.state = v1::WORKER_STATE_DRAINING;
      s.conn->Ref();
      targets.push_back(s.conn);
    }
  }
  Changed();
  v1::CoordinatorMessage message;
  message.mutable_shutdown()->set_reason(reason);
  for (WorkerLink* conn : targets) {
    conn->Send(message);
    conn->Unref();
  }
  absl::MutexLock lock(&mu_);
  auto gone = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const Slot& s : slots_) {
      if (s.conn != nullptr) return false;
    }
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&gone), timeout);
  int left = 0;
  for (const Slot& s : slots_) left += s.conn != nullptr ? 1 : 0;
  return left;
}

void WorkerHub::Monitor() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), kMonitorPeriod)) {
    const absl::Time now = absl::Now();
    std::vector<std::pair<WorkerLink*, std::string>> silent;
    for (int r = 0; r < world_size_; ++r) {
      const Slot& s = slots_[r];
      if (s.conn == nullptr || now - s.last_seen <= options_.heartbeat_timeout) continue;
      const std::string why = absl::StrCat("silent for ", absl::FormatDuration(now - s.last_seen),
                                           " (heartbeat timeout)");
      silent.emplace_back(FailLocked(r, why), why);
    }
    const bool incomplete = std::any_of(slots_.begin(), slots_.end(),
                                        [](const Slot& s) { return s.conn == nullptr; });
    if (incomplete && !shutting_down_ && now - incomplete_since_ >= options_.worker_wait &&
        now - last_missing_log_ >= options_.worker_wait) {
      Log(absl::StrCat("not serving: ", DetailLocked()));
      last_missing_log_ = now;
    }
    if (silent.empty()) continue;
    mu_.Unlock();
    for (auto& [conn, why] : silent) {
      conn->Close(absl::UnavailableError(why));
      conn->Unref();
    }
    SendResets();
    Changed();
    mu_.Lock();
  }
}

}  // namespace mla::coordinator
