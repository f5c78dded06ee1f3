// CoordinatorServer: one mla-coordinator: the gRPC server (mla.v1.Inference for clients,
// mla.v1.WorkerControl for workers, grpc.health.v1.Health, server reflection), the worker hub
// and the engine, started and stopped in order.
//
// Start binds and starts serving at once; the health status is NOT_SERVING (overall and for
// mla.v1.Inference) until the worker group is ready, and again whenever it is not. Drain is the
// graceful stop (SIGTERM): refuse new requests, let live ones finish for up to drain_grace, end
// the rest with a final CANCELLED chunk, send every worker Shutdown, then stop the server.
//
// Threads: Start, port and Drain from the main thread; Drain once.
#ifndef MLASERVE_COORDINATOR_COORDINATOR_SERVER_H_
#define MLASERVE_COORDINATOR_COORDINATOR_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/engine.h"
#include "coordinator/http_server.h"
#include "coordinator/inference_service.h"
#include "coordinator/model_card.h"
#include "coordinator/rendezvous_store.h"
#include "coordinator/worker_hub.h"
#include "grpcpp/grpcpp.h"
#include "security/api_token.h"
#include "security/credentials.h"

namespace mla::coordinator {

struct ServerOptions {
  std::string address = "0.0.0.0";                  // interface to listen on
  int port = 0;                                     // 0 = any free port (see port())
  int max_message_mb = 64;                          // largest request the server reads
  std::string checkpoint;                           // directory with config.json
  int64_t max_model_len = 0;                        // context cap below the model's; 0 = none
  HubOptions hub;                                   // tp, pp, cache, timeouts (model filled in)
  EngineOptions engine;                             // scheduler limits (model limits filled in)
  absl::Duration drain_grace = absl::Seconds(30);   // live requests get this long on Drain
  absl::Duration worker_shutdown = absl::Seconds(10);  // for ShutdownAcks on Drain
  // Security (docs/THREAT_MODEL.md). client_tls: the client port (cert + key: TLS; + ca: client
  // certificates required). worker_port >= 0 (0 = any free port): WorkerControl and the
  // rendezvous store move to their own server on that port, with worker_tls (must be mutual:
  // cert + key + ca, or nothing); < 0: they share the client port and its credentials.
  security::TlsFiles client_tls;
  security::TlsFiles worker_tls;
  int worker_port = -1;
  security::ApiToken api_token;                     // checked on mla.v1.Inference calls
  int http_port = -1;  // HTTP API, /metrics, /health, /ready: 0 = any free port, -1 = none
};

class CoordinatorServer {
 public:
  // Reads the model card, builds and starts everything. InvalidArgument / NotFound for bad
  // options or checkpoint; Unavailable if the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(ServerOptions options);
  ~CoordinatorServer();  // Drain() if not done

  int port() const { return port_; }
  int worker_port() const { return worker_port_; }  // == port() unless options.worker_port >= 0
  int http_port() const { return http_ == nullptr ? -1 : http_->port(); }
  const ModelCard& model() const { return model_; }

  void Drain();

 private:
  CoordinatorServer() = default;
  void SetServing(bool serving);
  absl::Status StartText();  // coordinator_http.cc: the tokenizer, if the checkpoint has one
  absl::Status StartHttp();  // coordinator_http.cc: the HTTP port, if asked for

  ServerOptions options_;
  ModelCard model_;
  int port_ = 0;
  bool drained_ = false;
  std::unique_ptr<WorkerHub> hub_;
  RendezvousStore store_;  // the groups' rendezvous (Gloo store, NCCL ids)
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<grpc::Server> server_;
  int worker_port_ = 0;
  std::unique_ptr<grpc::Server> worker_server_;  // WorkerControl + store when on their own port
  std::unique_ptr<Tokenizer> tokenizer_;  // null if the checkpoint has no tokenizer.json
  ServingMetrics metrics_;
  std::unique_ptr<HttpServer> http_;      // null unless options.http_port >= 0
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_COORDINATOR_SERVER_H_
