#include "coordinator/http_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/request_validation.h"
#include "coordinator/text_generation.h"
#include "httplib.h"

namespace mla::coordinator {
namespace {

constexpr char kJson[] = "application/json";
// How often a waiting handler checks that a streaming client is still there.
constexpr absl::Duration kPollInterval = absl::Milliseconds(500);

void Reply(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(ErrorJson(error), kJson);
}

std::string Sse(const std::string& json) { return absl::StrCat("data: ", json, "\n\n"); }

// The status a parse error is counted under in the metrics and the log.
absl::Status ParseErrorStatus(const ApiError& error) {
  return error.http_status == 404 ? absl::NotFoundError(error.message)
                                  : absl::InvalidArgumentError(error.message);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              Engine* engine,
                                                              const ModelCard* model,
                                                              const Tokenizer* tokenizer,
                                                              ServingMetrics* metrics) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->engine_ = engine;
  s->model_ = model;
  s->tokenizer_ = tokenizer;
  s->metrics_ = metrics;
  s->created_ = absl::ToUnixSeconds(absl::Now());
  if (!options.tls.cert.empty()) {
    s->server_ = std::make_unique<httplib::SSLServer>(
        options.tls.cert.c_str(), options.tls.key.c_str(),
        options.tls.ca.empty() ? nullptr : options.tls.ca.c_str());
  } else {
    s->server_ = std::make_unique<httplib::Server>();
  }
  if (!s->server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP TLS: cannot load the certificate '",
                                                   options.tls.cert, "' / key '",
                                                   options.tls.key, "'"));
  }
  s->api_token_ = options.api_token;
  s->server_->set_payload_max_length(static_cast<size_t>(options.max_body_mb) << 20);
  s->Routes();
  s->port_ = options.port == 0 ? s->server_->bind_to_any_port(options.address)
                               : (s->server_->bind_to_port(options.address, options.port)
                                      ? options.port
                                      : -1);
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", options.address, ":", options.port));
  }
  httplib::Server* server = s->server_.get();
  s->thread_ = std::thread([server] { server->listen_after_bind(); });
  return s;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::Routes() {
  httplib::Server& s = *server_;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!api_token_.required() || req.path == "/health" || req.path == "/ready" ||
        api_token_.Accepts(req.get_header_value("Authorization"))) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ApiError error;
    error.http_status = 401;
    error.type = "authentication_error";
    error.code = "invalid_api_key";
    error.message = "missing or invalid bearer token (Authorization: Bearer <token>)";
    res.set_header("WWW-Authenticate", "Bearer");
    Reply(res, error);
    return httplib::Server::HandlerResponse::Handled;
  });
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats stats = engine_->Stats();
    if (draining_.load(std::memory_order_relaxed)) {
      res.status = 503;
      res.set_content("not ready: draining\n", "text/plain");
    } else if (stats.serving) {
      res.set_content("ready\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content(absl::StrCat("not ready: ", stats.detail, "\n"), "text/plain");
    }
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->Render(engine_->Stats()), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(ModelsJson(model_->name, created_, /*one=*/false), kJson);
  });
  s.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != model_->name) {
      ApiError error;
      error.http_status = 404;
      error.message = absl::StrCat("The model '", req.matches[1].str(), "' does not exist");
      error.param = "model";
      error.code = "model_not_found";
      return Reply(res, error);
    }
    res.set_content(ModelsJson(model_->name, created_, /*one=*/true), kJson);
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(ApiKind::kCompletion, req, res);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(ApiKind::kChat, req, res);
  });
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Handled;
    ApiError error;
    error.http_status = res.status;
    error.type = res.status == 404 ? "not_found_error" : "invalid_request_error";
    error.message = res.status == 404 ? absl::StrCat("no route ", req.method, " ", req.path)
                                      : absl::StrCat("HTTP ", res.status);
    Reply(res, error);
    return httplib::Server::HandlerResponse::Handled;
  }));
}

void HttpServer::Generate(ApiKind kind, const httplib::Request& req, httplib::Response& res) {
  const std::string id =
      absl::StrCat(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-", next_id_.fetch_add(1));
  OpenAiRequest request;
  ApiError error;
  if (tokenizer_ == nullptr) {
    error.message = "this model has no tokenizer (no tokenizer.json in its checkpoint)";
  } else if (ParseOpenAiRequest(kind, req.body, *model_, tokenizer_, &request, &error)) {
    absl::StatusOr<ValidatedRequest> validated = ValidateGenerateRequest(request.generate, *model_);
    if (!validated.ok()) {
      RequestTrace(metrics_, "http", id).Finish(validated.status(), "", 0, 0);
      return Reply(res, ApiErrorFromStatus(validated.status(), kind));
    }
    validated->request_id = id;
    auto generation = std::make_shared<TextGeneration>(engine_, tokenizer_,
                                                       std::move(request.stop), metrics_, id);
    if (absl::Status st = generation->Start(std::move(*validated)); !st.ok()) {
      return Reply(res, ApiErrorFromStatus(st, kind));
    }
    const int64_t created = absl::ToUnixSeconds(absl::Now());
    const std::string& model = model_->name;
    if (!request.stream) {
      std::string text;
      TextEvent event;
      while (!event.final) {
        if (!generation->Next(&event, kPollInterval)) continue;
        text += event.text;
      }
      if (!event.status.ok()) return Reply(res, ApiErrorFromStatus(event.status, kind));
      res.set_content(CompletionJson(kind, id, created, model, text, event.finish_reason,
                                     event.prompt_tokens, event.completion_tokens),
                      kJson);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    const bool include_usage = request.include_usage;
    res.set_chunked_content_provider(
        "text/event-stream",
        [generation, kind, id, created, model, include_usage](size_t, httplib::DataSink& sink) {
          bool first = true;
          if (kind == ApiKind::kChat) {  // the role comes first, as OpenAI sends it
            const std::string role = Sse(ChunkJson(kind, id, created, model, "", true, ""));
            if (!sink.write(role.data(), role.size())) {
              return false;  // the destructor cancels
            }
            first = false;
          }
          TextEvent event;
          while (!event.final) {
            if (!generation->Next(&event, kPollInterval)) {
              if (!sink.is_writable()) return false;
              continue;
            }
            std::string out;
            if (event.final && !event.status.ok()) {
              out = Sse(ErrorJson(ApiErrorFromStatus(event.status, kind)));
            } else if (!event.text.empty() || event.final) {
              out = Sse(ChunkJson(kind, id, created, model, event.text, first,
                                  event.final ? event.finish_reason : ""));
              first = false;
              if (event.final && include_usage) {
                out += Sse(UsageChunkJson(kind, id, created, model, event.prompt_tokens,
                                          event.completion_tokens));
              }
            }
            if (event.final) out += "data: [DONE]\n\n";
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          }
          sink.done();
          return true;
        });
    return;
  }
  RequestTrace(metrics_, "http", id)
      .Finish(ParseErrorStatus(error), "", 0, 0);
  Reply(res, error);
}

}  // namespace mla::coordinator
