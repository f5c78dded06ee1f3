#include "worker/service/worker_client.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/config_hash.h"
#include "grpcpp/grpcpp.h"
#include "mla/v1/worker.grpc.pb.h"
#include "worker/service/backend_factory.h"
#include "worker/service/control_channel.h"
#include "worker/service/shard_loader.h"
#include "worker/service/step_executor.h"

namespace mla::worker_service {
namespace {

void Log(const std::string& line) { absl::FPrintF(stderr, "mla-worker: %s\n", line); }

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

enum class SessionEnd { kShutdown, kLost, kRefused };

// One Connect stream, from Register to its end.
class Session {
 public:
  Session(const WorkerOptions& options, std::shared_ptr<Backend> backend,
          std::shared_ptr<grpc::Channel> channel)
      : options_(options), backend_(std::move(backend)),
        stub_(v1::WorkerControl::NewStub(std::move(channel))) {
    absl::BitGen gen;
    nonce_base_ = absl::Uniform<uint64_t>(gen) << 32;
  }

  // Runs the stream to its end; *status is its final status.
  SessionEnd Run(grpc::Status* status) {
    stream_ = stub_->Connect(&context_);
    v1::WorkerMessage hello;
    *hello.mutable_register_() = MakeRegister();
    const bool registered = Write(hello);
    std::thread heartbeats([this] { Heartbeats(); });
    SessionEnd end = SessionEnd::kLost;
    if (registered) {
      v1::CoordinatorMessage in;
      while (Read(&in)) {
        if (!Handle(in)) {  // Shutdown: acknowledged; read until the coordinator closes
          end = SessionEnd::kShutdown;
          while (stream_->Read(&in)) {
          }
          break;
        }
      }
    }
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    heartbeats.join();
    *status = stream_->Finish();
    const grpc::StatusCode code = status->error_code();
    if (end == SessionEnd::kLost && (code == grpc::StatusCode::FAILED_PRECONDITION ||
                                     code == grpc::StatusCode::RESOURCE_EXHAUSTED)) {
      end = SessionEnd::kRefused;
    }
    return end;
  }

 private:
  v1::Register MakeRegister() const {
    v1::Register reg;
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    reg.set_host(host);
    reg.set_device(options_.device);
    reg.set_pid(getpid());
    const int64_t page = sysconf(_SC_PAGESIZE);
    reg.set_free_memory_bytes(page * sysconf(_SC_AVPHYS_PAGES));
    reg.set_total_memory_bytes(page * sysconf(_SC_PHYS_PAGES));
    if (!options_.checkpoint.empty()) {
      std::string dir = options_.checkpoint;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      reg.set_checkpoint_id(dir.substr(dir.find_last_of('/') + 1));
      absl::StatusOr<std::string> config = ReadConfigJson(options_.checkpoint);
      if (config.ok()) reg.set_config_hash(ConfigHash(*config));
    }
    if (options_.preferred_rank >= 0) reg.set_preferred_rank(options_.preferred_rank);
    return reg;
  }

  bool Read(v1::CoordinatorMessage* in) {
    read_since_ms_.store(NowMs());
    const bool ok = stream_->Read(in);
    read_since_ms_.store(0);
    if (ok) last_heard_ms_.store(NowMs());
    return ok;
  }

  bool Write(const v1::WorkerMessage& message) {
    absl::MutexLock lock(&write_mu_);
    if (writes_done_) return false;
    return stream_->Write(message);
  }

  // Returns false after Shutdown.
  bool Handle(const v1::CoordinatorMessage& in) {
    v1::WorkerMessage out;
    switch (in.msg_case()) {
      case v1::CoordinatorMessage::kAssignment: {
        assignment_ = in.assignment();
        const v1::Assignment& a = assignment_;
        Log(absl::StrFormat("rank %d of %d (stage %d, tp rank %d): layers [%d, %d)", a.rank(),
                            a.tp_size() * a.pp_size(), a.stage(), a.tp_rank(), a.first_layer(),
                            a.end_layer()));
        return true;
      }
      case v1::CoordinatorMessage::kLoadModel:
        *out.mutable_loaded() = Load(in.load_model());
        Write(out);
        return true;
      case v1::CoordinatorMessage::kStep:
        if (executor_ == nullptr) {
          out.mutable_step_result()->set_step_id(in.step().step_id());
          out.mutable_step_result()->set_error("step before the model was loaded");
        } else {
          *out.mutable_step_result() = executor_->Run(in.step());
        }
        Write(out);
        return true;
      case v1::CoordinatorMessage::kHeartbeat:
        if ((in.heartbeat().nonce() & ~uint64_t{0xffffffff}) != nonce_base_) {  // not our echo
          out.mutable_heartbeat()->set_nonce(in.heartbeat().nonce());
          out.mutable_heartbeat()->set_unix_time_ms(NowMs());
          Write(out);
        }
        return true;
      case v1::CoordinatorMessage::kReset:
        Log(absl::StrCat("reset: ", in.reset().reason(), "; waiting for the group to re-form"));
        DropGroupState();
        return true;
      case v1::CoordinatorMessage::kShutdown: {
        Log(absl::StrCat("shutdown: ", in.shutdown().reason()));
        out.mutable_shutdown_ack();
        Write(out);
        absl::MutexLock lock(&write_mu_);
        writes_done_ = true;
        stream_->WritesDone();
        return false;
      }
      case v1::CoordinatorMessage::MSG_NOT_SET:
        return true;
    }
    return true;
  }

  v1::Loaded Load(const v1::LoadModel& request) {
    v1::Loaded loaded;
    loaded.set_formation(request.formation());
    if (assignment_.tp_size() == 0) {
      loaded.set_error("LoadModel before Assignment");
      return loaded;
    }
    const std::string dir =
        options_.checkpoint.empty() ? assignment_.checkpoint_path() : options_.checkpoint;
    const CacheSizing sizing{.requested_blocks = request.num_cache_blocks(),
                             .flag_blocks = options_.num_cache_blocks,
                             .memory_bytes = options_.cache_memory_mb << 20,
                             .device_fraction = options_.cache_memory_fraction};
    const auto start = std::chrono::steady_clock::now();
    DropGroupState();
    // A survivor of a failed group that is given the same shard keeps its open checkpoint.
    std::unique_ptr<Checkpoint> reuse;
    if (SameShard(loaded_assignment_, assignment_) && loaded_dir_ == dir) {
      reuse = std::move(shard_.checkpoint);
    }
    shard_ = LoadedShard{};
    loaded_assignment_ = v1::Assignment();
    const bool reused = reuse != nullptr;
    absl::StatusOr<LoadedShard> shard = LoadShard(
        dir, assignment_, sizing,
        {.coordinator = options_.coordinator, .gloo_host = options_.gloo_host,
         .timeout = options_.collective_timeout, .meet_timeout = options_.connect_timeout},
        backend_,
        std::move(reuse));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!shard.ok()) {
      loaded.set_error(shard.status().ToString());
      Log(absl::StrCat("loading ", dir, " failed: ", shard.status().ToString()));
      return loaded;
    }
    shard_ = std::move(*shard);
    loaded_assignment_ = assignment_;
    loaded_dir_ = dir;
    const bool returns_tokens =
        assignment_.stage() + 1 == assignment_.pp_size() && assignment_.tp_rank() == 0;
    executor_ = std::make_unique<StepExecutor>(shard_.model.get(), shard_.cache.get(),
                                               returns_tokens, options_.step_graphs);
    loaded.set_num_cache_blocks(shard_.cache->num_blocks());
    loaded.set_load_seconds(seconds);
    loaded.set_weight_bytes(shard_.weight_bytes);
    Log(absl::StrFormat("loaded %s in %.2f s%s: %d cache blocks", dir, seconds,
                        reused ? " (checkpoint kept, communicators and cache rebuilt)" : "",
                        shard_.cache->num_blocks()));
    return loaded;
  }

  // Drops what belongs to the group formation (executor, model, communicators, cache); keeps the
  // open checkpoint for a re-formation that gives this worker the same shard.
  void DropGroupState() {
    executor_.reset();
    shard_.model.reset();
    shard_.communicators.clear();
    shard_.cache.reset();
  }

  static bool SameShard(const v1::Assignment& a, const v1::Assignment& b) {
    return a.tp_size() > 0 && a.stage() == b.stage() && a.tp_rank() == b.tp_rank() &&
           a.tp_size() == b.tp_size() && a.pp_size() == b.pp_size() &&
           a.first_layer() == b.first_layer() && a.end_layer() == b.end_layer() &&
           a.config_hash() == b.config_hash();
  }

  // Sends heartbeats; cancels the stream when the coordinator is silent while we wait on it.
  void Heartbeats() {
    uint64_t count = 0;
    const int64_t timeout_ms = absl::ToInt64Milliseconds(options_.coordinator_timeout);
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.heartbeat_interval)) {
      mu_.Unlock();
      v1::WorkerMessage ping;
      ping.mutable_heartbeat()->set_nonce(nonce_base_ | (++count & 0xffffffff));
      ping.mutable_heartbeat()->set_unix_time_ms(NowMs());
      Write(ping);
      const int64_t reading = read_since_ms_.load();
      const int64_t quiet_since = std::max(reading, last_heard_ms_.load());
      const bool silent = reading != 0 && NowMs() - quiet_since > timeout_ms;
      mu_.Lock();
      if (silent) {
        Log(absl::StrCat("the coordinator has been silent for ",
                         absl::FormatDuration(options_.coordinator_timeout), "; disconnecting"));
        context_.TryCancel();
        return;
      }
    }
  }

  const WorkerOptions& options_;
  const std::shared_ptr<Backend> backend_;  // the worker's device, for every shard it loads
  std::unique_ptr<v1::WorkerControl::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream_;
  uint64_t nonce_base_ = 0;  // high 32 bits of our heartbeat nonces
  std::atomic<int64_t> read_since_ms_{0};  // when the pending Read began; 0 = none pending
  std::atomic<int64_t> last_heard_ms_{0};
  v1::Assignment assignment_;
  v1::Assignment loaded_assignment_;  // the one shard_ was loaded for; empty if none
  std::string loaded_dir_;
  LoadedShard shard_;
  std::unique_ptr<StepExecutor> executor_;

  absl::Mutex write_mu_;
  bool writes_done_ ABSL_GUARDED_BY(write_mu_) = false;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status RunWorker(const WorkerOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      security::MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  SetControlChannelSecurity(*credentials, options.tls_server_name, options.max_message_mb);
  // A device that cannot be used is a configuration error: stop here, before registering.
  absl::StatusOr<std::unique_ptr<Backend>> made = MakeBackend(options.device);
  if (!made.ok()) return made.status();
  const std::shared_ptr<Backend> backend = *std::move(made);
  Log(absl::StrCat("running on ", backend->Describe()));
  bool served = false;
  for (;;) {
    auto channel = MakeControlChannel(options.coordinator, args);
    Log(absl::StrCat("connecting to ", options.coordinator));
    if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
      const std::string why =
          absl::StrCat("cannot reach the coordinator at ", options.coordinator, " within ",
                       absl::FormatDuration(options.connect_timeout));
      if (!served) return absl::UnavailableError(why);
      Log(absl::StrCat(why, "; it is gone, exiting"));
      return absl::OkStatus();
    }
    Session session(options, backend, channel);
    grpc::Status status;
    const SessionEnd end = session.Run(&status);
    if (end == SessionEnd::kShutdown) return absl::OkStatus();
    if (end == SessionEnd::kRefused) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          absl::StrCat("the coordinator refused this worker: ",
                                       status.error_message()));
    }
    served = true;
    Log(absl::StrCat("lost the coordinator (", status.error_message(), "); reconnecting"));
    absl::SleepFor(absl::Seconds(1));
  }
}

}  // namespace mla::worker_service
