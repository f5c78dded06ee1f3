// HttpServer: the coordinator's plain-HTTP port (cpp-httplib): the OpenAI-compatible API
// (POST /v1/completions, POST /v1/chat/completions, GET /v1/models[/{name}]; streaming as
// server-sent events), GET /metrics (Prometheus text format), GET /health (the process is up:
// always 200) and GET /ready (200 while the worker group serves, else 503).
//
// Handlers validate, translate to a GenerateRequest and submit to the Engine like the gRPC
// service; unlike gRPC reactions they run on httplib's own worker threads and block there
// waiting for tokens (TextGeneration). Errors are OpenAI's JSON error shape (openai_api.h).
//
// Threads: Start and Stop from the owner's thread; Stop once before destruction (the
// destructor stops too). The engine, model card, tokenizer (may be null) and metrics must
// outlive the server.
#ifndef MLASERVE_COORDINATOR_HTTP_SERVER_H_
#define MLASERVE_COORDINATOR_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "coordinator/engine.h"
#include "coordinator/model_card.h"
#include "coordinator/openai_api.h"
#include "coordinator/request_trace.h"
#include "coordinator/tokenizer.h"
#include "security/api_token.h"
#include "security/credentials.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace mla::coordinator {

struct HttpOptions {
  std::string address = "0.0.0.0";  // interface to listen on
  int port = 0;                      // 0 = any free port (see port())
  int max_body_mb = 64;              // largest request body read
  // TLS as on the gRPC client port (security/credentials.h): cert + key = HTTPS; with ca,
  // client certificates are required. api_token: "Authorization: Bearer <token>" required on
  // every path but /health and /ready (else 401).
  security::TlsFiles tls;
  security::ApiToken api_token;
};

class HttpServer {
 public:
  // Binds and starts serving on a thread of its own. Unavailable if the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                           Engine* engine, const ModelCard* model,
                                                           const Tokenizer* tokenizer,
                                                           ServingMetrics* metrics);
  ~HttpServer();

  int port() const { return port_; }
  // Stops listening and waits for the handlers to return. Idempotent.
  void Stop();
  // From now on /ready answers 503 (the server drains); requests are refused by the engine.
  void SetDraining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  HttpServer() = default;
  void Routes();
  void Generate(ApiKind kind, const httplib::Request& req, httplib::Response& res);

  Engine* engine_ = nullptr;
  const ModelCard* model_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
  ServingMetrics* metrics_ = nullptr;
  security::ApiToken api_token_;
  int64_t created_ = 0;  // unix seconds of Start, the model's "created"
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> draining_{false};
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_HTTP_SERVER_H_
