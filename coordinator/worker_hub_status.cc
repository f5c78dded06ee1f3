// WorkerHub's reports: the group's state for the step loop, the per-rank status for
// GetClusterStatus, and the one-line explanation of why the group is not serving.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/worker_hub.h"

namespace mla::coordinator {

std::string WorkerHub::RankList(const std::vector<int>& ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

GroupState WorkerHub::State() const {
  absl::MutexLock lock(&mu_);
  GroupState state;
  state.ready = ready_;
  state.epoch = epoch_;
  if (ready_) {
    state.num_cache_blocks = slots_[0].cache_blocks;
    for (const Slot& s : slots_) {
      state.num_cache_blocks = std::min(state.num_cache_blocks, s.cache_blocks);
    }
  }
  state.detail = DetailLocked();
  return state;
}

std::string WorkerHub::DetailLocked() const {
  if (ready_) return "";
  if (shutting_down_) return "the coordinator is shutting down";
  std::vector<int> missing, waiting, loading;
  std::vector<std::string> parts;
  for (int r = 0; r < world_size_; ++r) {
    const Slot& s = slots_[r];
    if (s.conn == nullptr) {
      missing.push_back(r);
    } else if (s.state == v1::WORKER_STATE_FAILED) {
      parts.push_back(absl::StrCat("rank ", r, " ", s.error));
    } else if (s.state == v1::WORKER_STATE_REGISTERED) {
      waiting.push_back(r);
    } else if (s.state != v1::WORKER_STATE_READY) {
      loading.push_back(r);
    }
  }
  if (!missing.empty()) {
    std::string part = absl::StrFormat(
        "missing %s of %d (tp=%d x pp=%d): not registered after %d s", RankList(missing),
        world_size_, options_.tp_size, options_.pp_size,
        absl::ToInt64Seconds(absl::Now() - incomplete_since_));
    for (int r : missing) {
      if (!slots_[r].error.empty()) {
        absl::StrAppend(&part, "; rank ", r, " failed: ", slots_[r].error);
      }
    }
    parts.insert(parts.begin(), part);
  }
  if (!waiting.empty()) {
    parts.push_back(absl::StrCat(RankList(waiting), " registered, not loaded until all are"));
  }
  if (!loading.empty()) parts.push_back(absl::StrCat(RankList(loading), " loading"));
  return absl::StrJoin(parts, "; ");
}

int64_t WorkerHub::NumPendingSteps() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(pending_.size());
}

std::vector<v1::WorkerStatus> WorkerHub::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::WorkerStatus> out(world_size_);
  for (int r = 0; r < world_size_; ++r) {
    const Slot& s = slots_[r];
    v1::WorkerStatus& w = out[r];
    w.set_rank(r);
    w.set_stage(r / options_.tp_size);
    w.set_tp_rank(r % options_.tp_size);
    w.set_state(s.state);
    w.set_cache_blocks(s.cache_blocks);
    if (s.state != v1::WORKER_STATE_UNSPECIFIED) {
      w.set_address(absl::StrFormat("%s:%d (pid %d)", s.reg.host(), s.reg.device(), s.reg.pid()));
    }
  }
  return out;
}

}  // namespace mla::coordinator
