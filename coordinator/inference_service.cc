#include "coordinator/inference_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/generate_reactor.h"
#include "coordinator/step_plan.h"

namespace mla::coordinator {
namespace {

// A stream refused before it starts (a bad bearer token).
class RefusedStream final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                 const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

InferenceService::InferenceService(const ModelCard* model, int32_t tp_size, int32_t pp_size,
                                   Engine* engine, const WorkerHub* hub)
    : model_(model), tp_size_(tp_size), pp_size_(pp_size), engine_(engine), hub_(hub) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  if (grpc::Status auth = api_token_.CheckGrpc(*context); !auth.ok()) {
    return new RefusedStream(auth);
  }
  std::string id = request->request_id();
  if (id.empty()) id = absl::StrCat("req-", next_request_id_.fetch_add(1));
  return new GenerateReactor(engine_, *model_, *request, std::move(id), tokenizer_, metrics_);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetModelInfoRequest* request,
                                                         v1::ModelInfo* response) {
  if (grpc::Status auth = api_token_.CheckGrpc(*context); !auth.ok()) {
    return Refuse(context, auth);
  }
  response->set_name(model_->name);
  response->set_vocab_size(model_->vocab_size);
  response->set_num_layers(model_->num_layers);
  response->set_num_heads(model_->num_heads);
  response->set_hidden_size(model_->hidden_size);
  response->set_max_context_len(model_->max_context_len);
  response->set_kv_cache_bytes_per_token(model_->cache_bytes_per_token);
  response->set_tp_size(tp_size_);
  response->set_pp_size(pp_size_);
  response->set_block_size(static_cast<int32_t>(kBlockSize));
  response->set_eos_token_id(model_->eos_token_id);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::GetClusterStatus(
    grpc::CallbackServerContext* context, const v1::GetClusterStatusRequest* request,
    v1::ClusterStatus* response) {
  if (grpc::Status auth = api_token_.CheckGrpc(*context); !auth.ok()) {
    return Refuse(context, auth);
  }
  for (v1::WorkerStatus& worker : hub_->Workers()) *response->add_workers() = std::move(worker);
  const EngineStats stats = engine_->Stats();
  response->set_serving(stats.serving);
  if (!stats.serving) {  // the hub's account is fresher than the engine's last poll
    const std::string detail = hub_->State().detail;
    response->set_detail(detail.empty() ? stats.detail : detail);
  }
  response->set_cache_blocks_total(stats.cache_blocks_total);
  response->set_cache_blocks_free(stats.cache_blocks_free);
  response->set_num_running(static_cast<int32_t>(stats.num_running));
  response->set_num_waiting(static_cast<int32_t>(stats.num_waiting));
  response->set_num_steps(stats.num_steps);
  response->set_step_loop_cpu_seconds(stats.step_loop_cpu_seconds);
  response->set_num_preemptions(stats.num_preemptions);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace mla::coordinator
