// mla-coordinator: serves mla.v1.Inference to clients and drives a group of mla-workers.
//
//   mla-coordinator --checkpoint=DIR [--port=0] [--tp=1 --pp=1] [--num_cache_blocks=0]
//                   [--max_num_seqs=256 --max_num_batched_tokens=2048 --max_waiting=1024]
//                   [--drain_grace_s=30 --worker_wait_s=60]
//                   [--tls_dir=DIR | --tls_cert=F --tls_key=F [--tls_ca=F]]
//                   [--worker_port=P --worker_tls_dir=DIR | --worker_tls_{cert,key,ca}=F]
//                   [--api_token=T | --api_token_file=F]
//
// The first line on stdout is "listening on PORT" (flushed), PORT being the one bound (useful
// with --port=0). Logs go to stderr. SIGTERM or SIGINT drains (see CoordinatorServer::Drain) and
// exits 0.
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "coordinator/coordinator_server.h"
#include "security/api_token.h"
#include "security/credentials.h"

ABSL_FLAG(std::string, address, "0.0.0.0", "interface to listen on");
ABSL_FLAG(int, port, 0, "port for clients and workers; 0 = pick a free one");
ABSL_FLAG(std::string, checkpoint, "", "checkpoint directory; its path is sent to the workers");
ABSL_FLAG(int64_t, max_model_len, 0, "context (prompt + output) cap; 0 = the model's");
ABSL_FLAG(int, tp, 1, "tensor-parallel ranks per pipeline stage");
ABSL_FLAG(int, pp, 1, "pipeline stages");
ABSL_FLAG(int64_t, num_cache_blocks, 0, "cache blocks per worker; 0 = as the workers report");
ABSL_FLAG(int64_t, max_num_seqs, 256, "running sequences at most");
ABSL_FLAG(int64_t, max_num_batched_tokens, 2048, "tokens per step at most");
ABSL_FLAG(int64_t, max_waiting, 1024, "queued requests at most; beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_message_mb, 64, "largest request message read, in MiB");
ABSL_FLAG(double, drain_grace_s, 30, "on SIGTERM, seconds live requests get to finish");
ABSL_FLAG(double, worker_wait_s, 60, "log the missing ranks after this many seconds");
ABSL_FLAG(int, http_port, -1,
          "HTTP port (OpenAI API, /metrics, /health, /ready); 0 = pick a free one and print "
          "\"http listening on PORT\" after the gRPC line; -1 = no HTTP");
ABSL_FLAG(double, heartbeat_timeout_s, 6, "a worker silent this long has failed (hung)");
ABSL_FLAG(double, step_timeout_s, 10,
          "a step not answered within this fails the ranks that did not answer");
ABSL_FLAG(double, queue_timeout_s, 120,
          "a request queued (not yet scheduled) longer than this ends with DEADLINE_EXCEEDED; "
          "0 = no limit");
ABSL_FLAG(std::string, tls_dir, "",
          "client port TLS: a directory with tls.crt, tls.key (and ca.crt: then client "
          "certificates are required), e.g. a mounted Kubernetes secret");
ABSL_FLAG(std::string, tls_cert, "", "client port TLS certificate chain (PEM); overrides tls_dir");
ABSL_FLAG(std::string, tls_key, "", "client port TLS private key (PEM); overrides tls_dir");
ABSL_FLAG(std::string, tls_ca, "",
          "client port: CA for client certificates (PEM): set = mutual TLS; overrides tls_dir");
ABSL_FLAG(int, worker_port, -1,
          "port for workers (WorkerControl, rendezvous store); 0 = any free one; -1 = share the "
          "client port. Needed for --worker_tls_*");
ABSL_FLAG(std::string, worker_tls_dir, "",
          "worker port mutual TLS: a directory with tls.crt, tls.key and ca.crt (the CA of the "
          "workers' client certificates)");
ABSL_FLAG(std::string, worker_tls_cert, "", "worker port certificate chain; overrides dir");
ABSL_FLAG(std::string, worker_tls_key, "", "worker port private key; overrides dir");
ABSL_FLAG(std::string, worker_tls_ca, "", "CA of the workers' certificates; overrides dir");
ABSL_FLAG(std::string, api_token, "",
          "bearer token clients must send (authorization: Bearer <token>); prefer "
          "--api_token_file (a flag is visible in the process list)");
ABSL_FLAG(std::string, api_token_file, "", "file whose first line is the bearer token");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // A closed peer socket is an error on that connection, never a reason to die.
  signal(SIGPIPE, SIG_IGN);
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mla::coordinator::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.port = absl::GetFlag(FLAGS_port);
  options.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  options.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  options.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  options.hub.tp_size = absl::GetFlag(FLAGS_tp);
  options.hub.pp_size = absl::GetFlag(FLAGS_pp);
  options.hub.num_cache_blocks = absl::GetFlag(FLAGS_num_cache_blocks);
  options.hub.worker_wait = absl::Seconds(absl::GetFlag(FLAGS_worker_wait_s));
  options.hub.heartbeat_timeout = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_timeout_s));
  options.engine.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  options.engine.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  options.engine.scheduler.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  options.engine.step_timeout = absl::Seconds(absl::GetFlag(FLAGS_step_timeout_s));
  options.engine.queue_timeout = absl::Seconds(absl::GetFlag(FLAGS_queue_timeout_s));
  options.drain_grace = absl::Seconds(absl::GetFlag(FLAGS_drain_grace_s));
  options.http_port = absl::GetFlag(FLAGS_http_port);

  options.client_tls = mla::security::ResolveTlsFiles(
      absl::GetFlag(FLAGS_tls_dir), {.cert = absl::GetFlag(FLAGS_tls_cert),
                                     .key = absl::GetFlag(FLAGS_tls_key),
                                     .ca = absl::GetFlag(FLAGS_tls_ca)});
  options.worker_tls = mla::security::ResolveTlsFiles(
      absl::GetFlag(FLAGS_worker_tls_dir), {.cert = absl::GetFlag(FLAGS_worker_tls_cert),
                                            .key = absl::GetFlag(FLAGS_worker_tls_key),
                                            .ca = absl::GetFlag(FLAGS_worker_tls_ca)});
  options.worker_port = absl::GetFlag(FLAGS_worker_port);
  auto api_token = mla::security::ApiToken::FromFlags(absl::GetFlag(FLAGS_api_token),
                                                      absl::GetFlag(FLAGS_api_token_file));
  if (!api_token.ok()) {
    std::fprintf(stderr, "mla-coordinator: %s\n", api_token.status().ToString().c_str());
    return 1;
  }
  options.api_token = std::move(*api_token);

  auto server = mla::coordinator::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "mla-coordinator: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %d\n", (*server)->port());
  if ((*server)->http_port() >= 0) std::printf("http listening on %d\n", (*server)->http_port());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::fprintf(stderr, "mla-coordinator: got signal %d\n", signal_number);
  (*server)->Drain();
  return 0;
}
