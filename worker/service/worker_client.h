// RunWorker: the life of one mla-worker process as a client of its coordinator.
//
// It connects to the coordinator's WorkerControl service (retrying with backoff for up to
// connect_timeout), opens the Connect stream and Registers; then it follows the coordinator:
// Assignment (its rank and layer range), LoadModel (load the shard with LoadShard, allocate the
// cache, answer Loaded with the block count), Steps (run each with a StepExecutor, answer
// StepResult), Heartbeats (answered), Reset (another rank failed: drop the model, communicators
// and cache, keeping the open checkpoint for a re-formation with the same shard), Shutdown
// (answer ShutdownAck, close, return OK). A thread
// sends a Heartbeat every heartbeat_interval and cancels the stream when the coordinator has
// been silent for coordinator_timeout while the worker waits on it. When the stream breaks the
// worker drops its shard and connects again from scratch (a restarted coordinator gets it back).
//
// Threads: RunWorker blocks its caller (the main thread) and starts the heartbeat thread of each
// session; the two write to the stream under one lock.
#ifndef MLASERVE_WORKER_SERVICE_WORKER_CLIENT_H_
#define MLASERVE_WORKER_SERVICE_WORKER_CLIENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "security/credentials.h"

namespace mla::worker_service {

struct WorkerOptions {
  std::string coordinator;                                 // host:port of the coordinator
  std::string checkpoint;                                  // local checkpoint dir; empty = the
                                                           // path in the Assignment
  int64_t num_cache_blocks = 0;                            // 0 = fit cache_memory_mb (unless the
                                                           // coordinator asks for a number)
  int64_t cache_memory_mb = 256;                           // CPU: memory for the cache when
                                                           // sizing it
  double cache_memory_fraction = 0.85;                     // GPU: share of the memory free after
                                                           // loading that the cache takes
  int device = -1;                                         // GPU ordinal; -1 = CPU
  bool step_graphs = true;  // ForwardOptions::step_graphs (false: --enforce_eager)
  int preferred_rank = -1;                                 // asked for in Register; -1 = any
  std::string gloo_host;                                   // CPU groups: address to listen on;
                                                           // empty = toward the coordinator
  absl::Duration connect_timeout = absl::Seconds(60);      // give up connecting after this
  absl::Duration heartbeat_interval = absl::Seconds(2);
  absl::Duration coordinator_timeout = absl::Seconds(20);  // silence that ends a session
  // Security (docs/THREAT_MODEL.md): tls.ca set = TLS, verifying the coordinator's certificate
  // (for the host in `coordinator`, or tls_server_name); tls.cert + tls.key = presented to it
  // (mutual TLS, needed on a --worker_port with --worker_tls_*). Empty = plaintext.
  security::TlsFiles tls;
  std::string tls_server_name;
  int max_message_mb = 64;                                 // largest message read
  absl::Duration collective_timeout = absl::Seconds(5);    // per collective, Gloo or NCCL (a
                                                           // dead or hung peer fails the step
                                                           // after it; also bounds NCCL's setup)
};

// Returns OK after a Shutdown, or once the coordinator it served has been unreachable for
// connect_timeout. Unavailable if it never reached a coordinator; FailedPrecondition or
// ResourceExhausted if the coordinator refused it (another model, no free rank); the backend's
// error, before connecting, if options.device cannot be used (no such GPU, a CPU-only build).
absl::Status RunWorker(const WorkerOptions& options);

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_WORKER_CLIENT_H_
