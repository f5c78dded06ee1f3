// mla-worker: one worker of a serving group (one per GPU, or one per CPU rank in tests).
//
//   mla-worker --coordinator=HOST:PORT [--checkpoint=DIR] [--device=-1 (CPU) | --device=GPU]
//              [--num_cache_blocks=N | --cache_memory_mb=256 (CPU) |
//               --cache_memory_fraction=0.85 (GPU)] [--rank=-1] [--connect_timeout_s=60]
//              [--tls_dir=DIR | --tls_ca=F [--tls_cert=F --tls_key=F]] [--tls_server_name=N]
//              [--max_message_mb=64]
//
// Without --coordinator it uses the Kubernetes LeaderWorkerSet variables: LWS_LEADER_ADDRESS
// with --coordinator_port, and LWS_WORKER_INDEX as the rank it asks for (unless --rank is set).
// Exits 0 after the coordinator's Shutdown (or once a coordinator it served is gone for
// --connect_timeout_s), 1 if it never reached one, was refused, or cannot use its --device. Logs go to stderr.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "security/credentials.h"
#include "worker/service/worker_client.h"

ABSL_FLAG(std::string, coordinator, "", "coordinator address host:port; default: "
          "$LWS_LEADER_ADDRESS:--coordinator_port");
ABSL_FLAG(int, coordinator_port, 50051, "the coordinator's port when taken from LWS");
ABSL_FLAG(std::string, checkpoint, "", "checkpoint directory; default: the coordinator's path");
ABSL_FLAG(int64_t, num_cache_blocks, 0, "cache blocks to allocate; 0 = fit --cache_memory_mb");
ABSL_FLAG(int64_t, cache_memory_mb, 256, "CPU: memory for the latent cache when sizing it");
ABSL_FLAG(double, cache_memory_fraction, 0.85,
          "GPU: share of the device memory free after loading the weights that the latent cache "
          "takes (the rest holds activations and workspaces)");
ABSL_FLAG(int, device, -1, "GPU ordinal; -1 = CPU");
ABSL_FLAG(bool, enforce_eager, false,
          "GPU: run every step op by op, never recording decode steps as CUDA graphs");
ABSL_FLAG(int, rank, -1, "rank to ask for; -1 = $LWS_WORKER_INDEX if set, else any");
ABSL_FLAG(double, connect_timeout_s, 60, "give up reaching the coordinator after this long");
ABSL_FLAG(double, heartbeat_s, 2, "seconds between heartbeats");
ABSL_FLAG(double, coordinator_timeout_s, 20, "a coordinator silent this long is gone");
ABSL_FLAG(double, collective_timeout_s, 5,
          "a collective (all-reduce, pipeline send/recv; Gloo or NCCL) not done within this fails "
          "the step");
ABSL_FLAG(std::string, gloo_host, "",
          "CPU groups: the address this rank's Gloo connections listen on; default: the local "
          "interface that routes to the coordinator");

ABSL_FLAG(std::string, tls_dir, "",
          "TLS to the coordinator: a directory with ca.crt (verifies the coordinator) and "
          "tls.crt + tls.key (this worker's client certificate), e.g. a mounted secret");
ABSL_FLAG(std::string, tls_ca, "", "CA of the coordinator's certificate (PEM); overrides dir");
ABSL_FLAG(std::string, tls_cert, "", "this worker's client certificate (PEM); overrides dir");
ABSL_FLAG(std::string, tls_key, "", "this worker's private key (PEM); overrides dir");
ABSL_FLAG(std::string, tls_server_name, "",
          "name the coordinator's certificate must carry; default: the host dialled");
ABSL_FLAG(int, max_message_mb, 64, "largest message read from the coordinator, in MiB");

int main(int argc, char** argv) {
  // A collective peer that dies mid-write must surface as EPIPE (an error status and a Reset),
  // not as SIGPIPE killing this survivor too: the CPU collectives write to plain sockets.
  signal(SIGPIPE, SIG_IGN);
  absl::ParseCommandLine(argc, argv);
  mla::worker_service::WorkerOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  const char* leader = std::getenv("LWS_LEADER_ADDRESS");
  if (options.coordinator.empty() && leader != nullptr && *leader != '\0') {
    options.coordinator = absl::StrCat(leader, ":", absl::GetFlag(FLAGS_coordinator_port));
  }
  if (options.coordinator.empty()) {
    std::fprintf(stderr, "mla-worker: give --coordinator=HOST:PORT (or set LWS_LEADER_ADDRESS)\n");
    return 1;
  }
  options.preferred_rank = absl::GetFlag(FLAGS_rank);
  const char* index = std::getenv("LWS_WORKER_INDEX");
  if (options.preferred_rank < 0 && index != nullptr &&
      !absl::SimpleAtoi(index, &options.preferred_rank)) {
    options.preferred_rank = -1;
  }
  options.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  options.num_cache_blocks = absl::GetFlag(FLAGS_num_cache_blocks);
  options.cache_memory_mb = absl::GetFlag(FLAGS_cache_memory_mb);
  options.device = absl::GetFlag(FLAGS_device);
  options.step_graphs = !absl::GetFlag(FLAGS_enforce_eager);
  options.cache_memory_fraction = absl::GetFlag(FLAGS_cache_memory_fraction);
  if (options.cache_memory_fraction <= 0 || options.cache_memory_fraction >= 1) {
    std::fprintf(stderr, "mla-worker: --cache_memory_fraction must be in (0, 1)\n");
    return 1;
  }
  options.gloo_host = absl::GetFlag(FLAGS_gloo_host);
  options.connect_timeout = absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s));
  options.heartbeat_interval = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_s));
  options.coordinator_timeout = absl::Seconds(absl::GetFlag(FLAGS_coordinator_timeout_s));
  options.tls = mla::security::ResolveTlsFiles(
      absl::GetFlag(FLAGS_tls_dir), {.cert = absl::GetFlag(FLAGS_tls_cert),
                                     .key = absl::GetFlag(FLAGS_tls_key),
                                     .ca = absl::GetFlag(FLAGS_tls_ca)});
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  if (options.max_message_mb < 1) {
    std::fprintf(stderr, "mla-worker: --max_message_mb must be >= 1\n");
    return 1;
  }
  options.collective_timeout = absl::Seconds(absl::GetFlag(FLAGS_collective_timeout_s));

  const absl::Status status = mla::worker_service::RunWorker(options);
  if (status.ok()) {
    std::fprintf(stderr, "mla-worker: exiting\n");
  } else {
    std::fprintf(stderr, "mla-worker: %s\n", status.ToString().c_str());
  }
  // Out without exit-time teardown: a connection attempt of the last channel can still be
  // handshaking on a gRPC thread (a coordinator that failed TLS verification is retried), and
  // OpenSSL's exit handler freeing its state under that thread crashed the worker (SIGSEGV
  // instead of exit 1, seen once under a loaded test run). Nothing here needs the teardown.
  std::fflush(nullptr);
  std::_Exit(status.ok() ? 0 : 1);
}
