#include "coordinator/worker_hub.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace mla::coordinator {
namespace {

void Log(const std::string& line) { absl::FPrintF(stderr, "mla-coordinator: %s\n", line); }

// The rendezvous store keys of group formation n live under this prefix.
std::string FormationPrefix(uint64_t n) { return absl::StrCat("formation", n, "/"); }

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerHub>> WorkerHub::Create(const HubOptions& options) {
  if (options.tp_size < 1 || options.model.num_heads % options.tp_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp is ", options.tp_size, "; must be >= 1 and divide the model's ",
                     options.model.num_heads, " attention heads"));
  }
  absl::StatusOr<std::vector<LayerRange>> ranges =
      SplitLayers(options.model.num_layers, options.pp_size);
  if (!ranges.ok()) return ranges.status();
  return std::unique_ptr<WorkerHub>(new WorkerHub(options, std::move(*ranges)));
}

WorkerHub::WorkerHub(const HubOptions& options, std::vector<LayerRange> ranges)
    : options_(options),
      ranges_(std::move(ranges)),
      world_size_(options.tp_size * options.pp_size),
      start_(absl::Now()),
      slots_(world_size_),
      incomplete_since_(start_) {}

WorkerHub::~WorkerHub() {
  Stop();
  absl::MutexLock lock(&mu_);
  for (Slot& slot : slots_) {
    if (slot.conn != nullptr) slot.conn->Unref();
    slot.conn = nullptr;
  }
  for (auto& [conn, why] : resets_) conn->Unref();
  resets_.clear();
}

void WorkerHub::Start() { monitor_ = std::thread([this] { Monitor(); }); }

void WorkerHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerHub::Connect(
    grpc::CallbackServerContext* context) {
  return new WorkerConnection(this, context->peer());
}

void WorkerHub::OnMessage(WorkerLink* conn, const v1::WorkerMessage& message) {
  Outbox out;
  std::vector<std::pair<WorkerLink*, absl::Status>> close;
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    const int rank = RankOfLocked(conn);
    if (rank >= 0) slots_[rank].last_seen = absl::Now();
    switch (message.msg_case()) {
      case v1::WorkerMessage::kRegister:
        if (rank >= 0) break;  // registered already; a repeat changes nothing
        RegisterLocked(conn, message.register_(), &out, &close);
        changed = true;
        break;
      case v1::WorkerMessage::kLoaded:
        // Ignored: not a member, or the answer to a formation that a failure superseded.
        if (rank < 0 || slots_[rank].state != v1::WORKER_STATE_LOADING ||
            message.loaded().formation() != formations_) {
          break;
        }
        LoadedLocked(rank, message.loaded());
        changed = true;
        break;
      case v1::WorkerMessage::kStepResult: {
        if (on_step_time_ && rank >= 0) on_step_time_(rank, message.step_result().elapsed_ms());
        auto it = rank < 0 ? pending_.end() : pending_.find(message.step_result().step_id());
        if (it == pending_.end()) break;  // not awaited (a step already given up on)
        PendingStep& pending = it->second;
        pending.waiting.erase(rank);
        if (message.step_result().has_error() && message.step_result().peer_failed()) {
          if (pending.peer_error.ok()) {  // wait for the others: a peer died or hangs
            pending.peer_error = absl::UnavailableError(
                absl::StrCat("rank ", rank, ": ", message.step_result().error()));
            pending.peer_error_rank = rank;
          }
        } else if (message.step_result().has_error() && pending.error.ok()) {
          pending.error = absl::InternalError(
              absl::StrCat("rank ", rank, ": ", message.step_result().error()));
          pending.error_rank = rank;
        }
        if (rank == (options_.pp_size - 1) * options_.tp_size) {
          pending.result = message.step_result();
        }
        break;
      }
      case v1::WorkerMessage::kHeartbeat: {
        v1::CoordinatorMessage reply;
        reply.mutable_heartbeat()->set_nonce(message.heartbeat().nonce());
        reply.mutable_heartbeat()->set_unix_time_ms(absl::ToUnixMillis(absl::Now()));
        conn->Ref();
        out.emplace_back(conn, std::move(reply));
        break;
      }
      case v1::WorkerMessage::kShutdownAck:
        conn->Ref();
        close.emplace_back(conn, absl::OkStatus());
        break;
      case v1::WorkerMessage::MSG_NOT_SET:
        break;
    }
  }
  for (auto& [c, m] : out) {
    c->Send(m);
    c->Unref();
  }
  for (auto& [c, status] : close) {
    c->Close(status);
    c->Unref();
  }
  if (changed) Changed();
}

void WorkerHub::RegisterLocked(WorkerLink* conn, const v1::Register& reg, Outbox* out,
                               std::vector<std::pair<WorkerLink*, absl::Status>>* refuse) {
  auto reject = [&](absl::Status status) {
    Log(absl::StrCat("refused worker ", reg.host(), " (pid ", reg.pid(), ", ", conn->peer(),
                     "): ", status.message()));
    conn->Ref();
    refuse->emplace_back(conn, std::move(status));
  };
  if (shutting_down_) return reject(absl::UnavailableError("the coordinator is shutting down"));
  if (!reg.config_hash().empty() && reg.config_hash() != options_.model.config_hash) {
    return reject(absl::FailedPreconditionError(absl::StrCat(
        "config.json hash ", reg.config_hash(), " of checkpoint '", reg.checkpoint_id(),
        "' differs from the coordinator's ", options_.model.config_hash, " ('",
        options_.model.name, "'): every worker must serve the same model")));
  }
  int rank = -1;
  if (reg.has_preferred_rank() && reg.preferred_rank() >= 0 &&
      reg.preferred_rank() < world_size_ && slots_[reg.preferred_rank()].conn == nullptr) {
    rank = reg.preferred_rank();
  }
  for (int r = 0; r < world_size_ && rank < 0; ++r) {
    if (slots_[r].conn == nullptr) rank = r;
  }
  if (rank < 0) {
    return reject(absl::ResourceExhaustedError(absl::StrFormat(
        "all %d ranks (tp=%d x pp=%d) are taken", world_size_, options_.tp_size,
        options_.pp_size)));
  }
  Slot& slot = slots_[rank];
  conn->Ref();
  slot = Slot{.conn = conn, .reg = reg, .state = v1::WORKER_STATE_REGISTERED,
              .last_seen = absl::Now()};
  Log(absl::StrFormat("rank %d registered: %s (device %d, pid %d, %s)", rank, reg.host(),
                      reg.device(), reg.pid(), conn->peer()));
  for (const Slot& s : slots_) {
    if (s.conn == nullptr) return;  // the others get their assignments once the group is full
  }
  ++formations_;
  for (int r = 0; r < world_size_; ++r) {
    if (slots_[r].state != v1::WORKER_STATE_REGISTERED) continue;
    v1::CoordinatorMessage assignment, load;
    *assignment.mutable_assignment() = AssignmentLocked(r);
    load.mutable_load_model()->set_num_cache_blocks(options_.num_cache_blocks);
    load.mutable_load_model()->set_formation(formations_);
    slots_[r].conn->Ref();
    out->emplace_back(slots_[r].conn, std::move(assignment));
    slots_[r].conn->Ref();
    out->emplace_back(slots_[r].conn, std::move(load));
    slots_[r].state = v1::WORKER_STATE_LOADING;
  }
}

v1::Assignment WorkerHub::AssignmentLocked(int rank) const {
  v1::Assignment a;
  const int stage = rank / options_.tp_size;
  a.set_rank(rank);
  a.set_tp_size(options_.tp_size);
  a.set_pp_size(options_.pp_size);
  a.set_stage(stage);
  a.set_tp_rank(rank % options_.tp_size);
  a.set_first_layer(static_cast<int32_t>(ranges_[stage].begin));
  a.set_end_layer(static_cast<int32_t>(ranges_[stage].end));
  for (int r = 0; r < world_size_; ++r) {
    v1::Peer* peer = a.add_peers();
    peer->set_rank(r);
    peer->set_host(slots_[r].reg.host());
    peer->set_device(slots_[r].reg.device());
  }
  a.mutable_rendezvous()->set_store_address("");  // the coordinator's own store
  a.mutable_rendezvous()->set_key_prefix(FormationPrefix(formations_));
  a.set_checkpoint_path(options_.model.checkpoint_path);
  a.set_config_hash(options_.model.config_hash);
  return a;
}

void WorkerHub::LoadedLocked(int rank, const v1::Loaded& loaded) {
  Slot& slot = slots_[rank];
  if (loaded.has_error() || loaded.num_cache_blocks() < 1) {
    slot.state = v1::WORKER_STATE_FAILED;  // stays connected: its rank is not free
    slot.error = loaded.has_error() ? absl::StrCat("failed to load: ", loaded.error())
                                    : "loaded but has room for no cache block";
    Log(absl::StrCat("rank ", rank, " ", slot.error));
    return;
  }
  slot.state = v1::WORKER_STATE_READY;
  slot.cache_blocks = loaded.num_cache_blocks();
  Log(absl::StrFormat("rank %d loaded in %.2f s: %d cache blocks", rank, loaded.load_seconds(),
                      slot.cache_blocks));
  int64_t capacity = slot.cache_blocks;
  for (const Slot& s : slots_) {
    if (s.state != v1::WORKER_STATE_READY) return;
    capacity = std::min(capacity, s.cache_blocks);
  }
  ready_ = true;
  ++epoch_;
  Log(absl::StrFormat("group ready: %d ranks (tp=%d x pp=%d), %d cache blocks", world_size_,
                      options_.tp_size, options_.pp_size, capacity));
}

WorkerLink* WorkerHub::FailLocked(int rank, const std::string& why) {
  Slot& slot = slots_[rank];
  WorkerLink* conn = slot.conn;
  if (conn == nullptr) return nullptr;
  int connected = 0;
  for (const Slot& s : slots_) connected += s.conn != nullptr ? 1 : 0;
  if (connected == world_size_) {  // the first rank to go missing
    incomplete_since_ = absl::Now();
    last_missing_log_ = absl::InfinitePast();
  }
  slot.conn = nullptr;
  slot.cache_blocks = 0;
  if (shutting_down_) return conn;  // leaving as asked: not a failure
  slot.state = v1::WORKER_STATE_FAILED;
  slot.error = why;
  Log(absl::StrFormat("rank %d (%s, pid %d) failed: %s", rank, slot.reg.host(), slot.reg.pid(),
                      why));
  ready_ = false;
  // Ranks still meeting for this formation stop waiting at once.
  if (formations_ > 0 && options_.on_abandon) {
    options_.on_abandon(FormationPrefix(formations_), absl::StrCat("rank ", rank, " failed: ", why));
  }
  for (int r = 0; r < world_size_; ++r) {  // the survivors drop their group state
    Slot& s = slots_[r];
    if (r == rank || s.conn == nullptr || s.state == v1::WORKER_STATE_REGISTERED) continue;
    s.state = v1::WORKER_STATE_REGISTERED;
    s.cache_blocks = 0;
    s.conn->Ref();
    resets_.emplace_back(s.conn, absl::StrCat("rank ", rank, " failed: ", why));
  }
  // No step in flight can finish now, even one this rank answered: answer them all, blaming no
  // other rank (error_rank stays -1).
  for (auto& [step_id, pending] : pending_) {
    if (pending.error.ok()) {
      pending.error = absl::UnavailableError(absl::StrCat("rank ", rank, " failed: ", why));
    }
  }
  return conn;
}

void WorkerHub::OnClosed(WorkerLink* conn, const std::string& why) {
  WorkerLink* detached = nullptr;
  {
    absl::MutexLock lock(&mu_);
    const int rank = RankOfLocked(conn);
    if (rank >= 0) detached = FailLocked(rank, why);
  }
  if (detached == nullptr) return;
  detached->Close(absl::UnavailableError(why));
  detached->Unref();
  SendResets();
  Changed();
}

int WorkerHub::RankOfLocked(const WorkerLink* conn) const {
  for (int r = 0; r < world_size_; ++r) {
    if (slots_[r].conn == conn) return r;
  }
  return -1;
}

absl::Status WorkerHub::SendStep(const v1::Step& step) {
  std::vector<WorkerLink*> targets;
  {
    absl::MutexLock lock(&mu_);
    if (!ready_) return absl::UnavailableError(DetailLocked());
    PendingStep& pending = pending_[step.step_id()];
    for (int r = 0; r < world_size_; ++r) {
      pending.waiting.insert(r);
      slots_[r].conn->Ref();
      targets.push_back(slots_[r].conn);
    }
  }
  v1::CoordinatorMessage message;
  *message.mutable_step() = step;
  for (WorkerLink* conn : targets) {
    conn->Send(message);
    conn->Unref();
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::StepResult> WorkerHub::AwaitStepResult(uint64_t step_id,
                                                          absl::Duration timeout) {
  std::vector<std::pair<WorkerLink*, std::string>> failed;
  absl::StatusOr<v1::StepResult> out;
  {
    absl::MutexLock lock(&mu_);
    auto done = [this, step_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = pending_.find(step_id);
      return it == pending_.end() || it->second.waiting.empty() || !it->second.error.ok();
    };
    const bool answered = mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    auto it = pending_.find(step_id);
    if (it == pending_.end()) {
      return absl::InternalError(absl::StrCat("step ", step_id, " was never sent"));
    }
    PendingStep pending = std::move(it->second);
    pending_.erase(it);
    if (!answered) {
      std::vector<int> late(pending.waiting.begin(), pending.waiting.end());
      const std::string why = absl::StrCat("no answer to step ", step_id, " within ",
                                           absl::FormatDuration(timeout));
      for (int r : late) failed.emplace_back(FailLocked(r, why), why);
      out = absl::DeadlineExceededError(absl::StrCat(RankList(late), ": ", why));
    } else if (pending.error.ok() && !pending.peer_error.ok()) {
      // Every rank answered, and only collective failures: blame the first to report one.
      const std::string why(pending.peer_error.message());
      failed.emplace_back(FailLocked(pending.peer_error_rank, why), why);
      out = pending.peer_error;
    } else if (!pending.error.ok()) {
      if (pending.error_rank >= 0) {
        const std::string why(pending.error.message());
        failed.emplace_back(FailLocked(pending.error_rank, why), why);
      }
      out = pending.error;
    } else {
      out = std::move(pending.result);
    }
  }
  for (auto& [conn, why] : failed) {
    if (conn == nullptr) continue;
    conn->Close(absl::UnavailableError(why));
    conn->Unref();
  }
  SendResets();
  if (!failed.empty()) Changed();
  return out;
}

}  // namespace mla::coordinator
