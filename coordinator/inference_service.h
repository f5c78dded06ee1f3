// InferenceService: the client API (mla.v1.Inference) of the coordinator, on gRPC's callback API.
//
// Generate gets one GenerateReactor per stream (validate, submit to the engine, stream the
// tokens); GetModelInfo and GetClusterStatus answer at once from the model card, the worker hub
// and the engine's published stats. Handlers only validate, translate and enqueue: the engine's
// loop does the work.
//
// Threads: every method runs on gRPC's library threads and returns without blocking. The engine,
// hub and model card must outlive the service (and the server it is registered with).
#ifndef MLASERVE_COORDINATOR_INFERENCE_SERVICE_H_
#define MLASERVE_COORDINATOR_INFERENCE_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "coordinator/engine.h"
#include "coordinator/model_card.h"
#include "coordinator/request_trace.h"
#include "coordinator/tokenizer.h"
#include "coordinator/worker_hub.h"
#include "grpcpp/grpcpp.h"
#include "mla/v1/inference.grpc.pb.h"
#include "security/api_token.h"

namespace mla::coordinator {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  InferenceService(const ModelCard* model, int32_t tp_size, int32_t pp_size, Engine* engine,
                   const WorkerHub* hub);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* GetClusterStatus(grpc::CallbackServerContext* context,
                                             const v1::GetClusterStatusRequest* request,
                                             v1::ClusterStatus* response) override;

  // Every call must then carry "authorization: Bearer <token>" (else UNAUTHENTICATED). Before
  // the server starts.
  void set_api_token(security::ApiToken token) { api_token_ = std::move(token); }

  // Text in and out (prompt_text, GenerateResponse.text) with `tokenizer`, and metrics and a
  // log line per request into `metrics`; either may be null. Before the server starts; both
  // must outlive the service.
  void set_text_and_metrics(const Tokenizer* tokenizer, ServingMetrics* metrics) {
    tokenizer_ = tokenizer;
    metrics_ = metrics;
  }

 private:
  const Tokenizer* tokenizer_ = nullptr;
  ServingMetrics* metrics_ = nullptr;
  const ModelCard* const model_;
  const int32_t tp_size_, pp_size_;
  Engine* const engine_;
  const WorkerHub* const hub_;
  security::ApiToken api_token_;  // none = every call accepted
  std::atomic<uint64_t> next_request_id_{1};  // for requests that bring no request_id
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_INFERENCE_SERVICE_H_
