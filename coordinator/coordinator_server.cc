#include "coordinator/coordinator_server.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace mla::coordinator {
namespace {

constexpr char kInferenceService[] = "mla.v1.Inference";

void Log(const std::string& line) { absl::FPrintF(stderr, "mla-coordinator: %s\n", line); }

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    ServerOptions options) {
  if (options.checkpoint.empty()) return absl::InvalidArgumentError("--checkpoint is required");
  if (options.max_message_mb < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_mb is ", options.max_message_mb, "; must be >= 1"));
  }
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  absl::StatusOr<ModelCard> model = LoadModelCard(options.checkpoint);
  if (!model.ok()) return model.status();
  s->model_ = std::move(*model);
  if (options.max_model_len < 0 || options.max_model_len == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_model_len is ", options.max_model_len, "; must be 0 or >= 2"));
  }
  if (options.max_model_len > 0 && options.max_model_len < s->model_.max_context_len) {
    s->model_.max_context_len = static_cast<int32_t>(options.max_model_len);
  }
  options.hub.model = s->model_;
  options.engine.scheduler.max_model_len = s->model_.max_context_len;
  options.engine.scheduler.eos_token_id = s->model_.eos_token_id;
  options.engine.max_cache_blocks = options.hub.num_cache_blocks;
  options.engine.max_steps_in_flight = options.hub.pp_size;
  s->options_ = options;
  if (absl::Status st = Scheduler::Create(options.engine.scheduler, 1).status(); !st.ok()) {
    return st;  // a scheduler option out of range: say so now, not when the workers are ready
  }

  options.hub.on_abandon = [self = s.get()](const std::string& prefix, const std::string& why) {
    self->store_.Abandon(prefix, why);
  };
  absl::StatusOr<std::unique_ptr<WorkerHub>> hub = WorkerHub::Create(options.hub);
  if (!hub.ok()) return hub.status();
  s->hub_ = std::move(*hub);
  CoordinatorServer* self = s.get();
  s->engine_ = std::make_unique<Engine>(options.engine, s->hub_.get(),
                                        [self](bool serving) { self->SetServing(serving); });
  s->inference_ = std::make_unique<InferenceService>(
      &s->model_, options.hub.tp_size, options.hub.pp_size, s->engine_.get(), s->hub_.get());

  if (absl::Status st = s->StartText(); !st.ok()) return st;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  s->inference_->set_api_token(options.api_token);
  const bool separate_worker_port = options.worker_port >= 0;
  if (!separate_worker_port && !options.worker_tls.empty()) {
    return absl::InvalidArgumentError(
        "worker TLS (--worker_tls_*) needs --worker_port: workers get their own port");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> client_credentials =
      security::MakeServerCredentials(options.client_tls);
  if (!client_credentials.ok()) return client_credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.address, ":", options.port),
                           *client_credentials, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_mb << 20);
  builder.RegisterService(s->inference_.get());
  grpc::ServerBuilder worker_builder;
  grpc::ServerBuilder& workers = separate_worker_port ? worker_builder : builder;
  workers.RegisterService(s->hub_.get());
  workers.RegisterService(&s->store_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, ":", options.port));
  }
  s->worker_port_ = s->port_;
  if (separate_worker_port) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> worker_credentials =
        options.worker_tls.empty() ? grpc::InsecureServerCredentials()
                                   : security::MakeServerCredentials(options.worker_tls, true);
    if (!worker_credentials.ok()) return worker_credentials.status();
    worker_builder.AddListeningPort(absl::StrCat(options.address, ":", options.worker_port),
                                    *worker_credentials, &s->worker_port_);
    worker_builder.SetMaxReceiveMessageSize(options.max_message_mb << 20);
    s->worker_server_ = worker_builder.BuildAndStart();
    if (s->worker_server_ == nullptr || s->worker_port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.address, ":", options.worker_port));
    }
  }
  Log(absl::StrFormat("client port %d: %s%s; worker port %d: %s", s->port_,
                      security::DescribeServer(options.client_tls),
                      options.api_token.required() ? ", bearer token required" : "",
                      s->worker_port_,
                      security::DescribeServer(separate_worker_port ? options.worker_tls
                                                                    : options.client_tls)));
  s->SetServing(false);
  if (absl::Status st = s->StartHttp(); !st.ok()) return st;
  s->hub_->Start();
  s->engine_->Start();
  Log(absl::StrFormat("%s: %d layers, vocab %d, context %d; waiting for %d workers (tp=%d x "
                      "pp=%d) on port %d",
                      s->model_.name, s->model_.num_layers, s->model_.vocab_size,
                      s->model_.max_context_len, options.hub.tp_size * options.hub.pp_size,
                      options.hub.tp_size, options.hub.pp_size, s->port_));
  return s;
}

CoordinatorServer::~CoordinatorServer() { Drain(); }

void CoordinatorServer::SetServing(bool serving) {
  if (drained_ && serving) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(kInferenceService, serving);
}

void CoordinatorServer::Drain() {
  if (drained_ || server_ == nullptr) return;
  drained_ = true;
  Log(absl::StrCat("draining: no new requests; live ones get ",
                   absl::FormatDuration(options_.drain_grace)));
  engine_->StopAccepting();
  if (http_ != nullptr) http_->SetDraining();  // /ready answers 503 from now on
  SetServing(false);
  if (!engine_->WaitIdle(options_.drain_grace)) {
    Log("grace period over: cancelling the requests still running");
    engine_->CancelAll();
    engine_->WaitIdle(absl::Seconds(10));
  }
  const int left = hub_->ShutdownWorkers("the coordinator is draining", options_.worker_shutdown);
  if (left > 0) Log(absl::StrCat(left, " workers did not acknowledge Shutdown"));
  if (http_ != nullptr) http_->Stop();
  engine_->Stop();
  hub_->Stop();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  if (worker_server_ != nullptr) {
    worker_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  }
  Log("stopped");
}

}  // namespace mla::coordinator
