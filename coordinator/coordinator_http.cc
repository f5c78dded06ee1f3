// CoordinatorServer's text and HTTP parts: the tokenizer (from the checkpoint directory) that
// gives the gRPC API prompt_text and GenerateResponse.text, and the HTTP port.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/coordinator_server.h"

namespace mla::coordinator {

absl::Status CoordinatorServer::StartText() {
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromDirectory(options_.checkpoint);
  if (tokenizer.ok()) {
    tokenizer_ = std::make_unique<Tokenizer>(std::move(*tokenizer));
  } else if (!absl::IsNotFound(tokenizer.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint's tokenizer: ", tokenizer.status().message()));
  } else {
    absl::FPrintF(stderr, "mla-coordinator: no tokenizer.json in %s: token ids only\n",
                  options_.checkpoint);
  }
  inference_->set_text_and_metrics(tokenizer_.get(), &metrics_);
  ServingMetrics* metrics = &metrics_;
  hub_->SetOnStepTime([metrics](int32_t rank, double ms) {
    metrics->WorkerStepTime(rank)->Observe(ms / 1000);
  });
  return absl::OkStatus();
}

absl::Status CoordinatorServer::StartHttp() {
  if (options_.http_port < 0) return absl::OkStatus();
  HttpOptions http;
  http.address = options_.address;
  http.port = options_.http_port;
  http.max_body_mb = options_.max_message_mb;
  http.tls = options_.client_tls;
  http.api_token = options_.api_token;
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(http, engine_.get(), &model_, tokenizer_.get(), &metrics_);
  if (!server.ok()) return server.status();
  http_ = std::move(*server);
  return absl::OkStatus();
}

}  // namespace mla::coordinator
