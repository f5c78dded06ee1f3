#include "coordinator/generate_reactor.h"

#include <utility>

#include "coordinator/request_validation.h"
#include "coordinator/status.h"

namespace mla::coordinator {
namespace {

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStopEos:
      return v1::FINISH_REASON_STOP_EOS;
    case FinishReason::kStopToken:
      return v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

GenerateReactor::GenerateReactor(Engine* engine, const ModelCard& model,
                                 const v1::GenerateRequest& request, std::string request_id)
    : engine_(engine), request_id_(std::move(request_id)) {
  absl::StatusOr<ValidatedRequest> validated = ValidateGenerateRequest(request, model);
  absl::Status status = validated.status();
  if (validated.ok()) {
    refs_.fetch_add(1, std::memory_order_relaxed);  // the engine's, if it takes the request
    status = engine_->Submit(std::move(*validated), this, &ticket_);
    if (!status.ok()) refs_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!status.ok()) Enqueue({}, /*final=*/true, ToGrpcStatus(status));
}

void GenerateReactor::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void GenerateReactor::OnUpdate(const SequenceUpdate& update) {
  const bool final = update.finish_reason != FinishReason::kNone;
  v1::GenerateResponse response;
  response.mutable_token_ids()->Assign(update.new_tokens.begin(), update.new_tokens.end());
  response.set_request_id(request_id_);
  if (final) {
    response.set_finish_reason(ToProto(update.finish_reason));
    response.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(update.num_prompt_tokens));
    response.mutable_usage()->set_completion_tokens(
        static_cast<uint32_t>(update.num_output_tokens));
  }
  Enqueue(std::move(response), final, grpc::Status::OK);
  if (final) Unref();  // the engine is done with this request
}

void GenerateReactor::OnError(const absl::Status& status) {
  Enqueue({}, /*final=*/true, ToGrpcStatus(status));
  Unref();
}

void GenerateReactor::Enqueue(v1::GenerateResponse response, bool final,
                              const grpc::Status& status) {
  const v1::GenerateResponse* next = nullptr;
  bool finish = false;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    if (ending_) return;  // cancelled (or ended) already: nothing more goes out
    const bool has_payload = response.token_ids_size() > 0 || response.has_finish_reason();
    if (has_payload) {
      if (queue_.size() >= 2) {  // the back is not in flight: merge into it
        v1::GenerateResponse& back = queue_.back();
        back.mutable_token_ids()->MergeFrom(response.token_ids());
        if (response.has_finish_reason()) {
          back.set_finish_reason(response.finish_reason());
          *back.mutable_usage() = response.usage();
        }
      } else {
        queue_.push_back(std::move(response));
      }
    }
    if (final) {
      ending_ = true;
      finish_status_ = status;
    }
    if (!writing_ && !queue_.empty()) {
      writing_ = true;
      next = &queue_.front();  // stays put until OnWriteDone pops it
    } else {
      finish = TakeFinishLocked();
      finish_status = finish_status_;
    }
  }
  if (next != nullptr) StartWrite(next);
  if (finish) Finish(finish_status);
}

bool GenerateReactor::TakeFinishLocked() {
  if (!ending_ || writing_ || finished_) return false;
  finished_ = true;
  return true;
}

void GenerateReactor::OnWriteDone(bool ok) {
  const v1::GenerateResponse* next = nullptr;
  bool finish = false, cancel = false;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    queue_.pop_front();
    if (!ok && !ending_) {  // the client is gone
      ending_ = cancelled_ = cancel = true;
      finish_status_ = ToGrpcStatus(absl::CancelledError("the stream broke"));
    }
    if (!ok) queue_.clear();
    if (!queue_.empty()) {
      next = &queue_.front();
    } else {
      writing_ = false;
      finish = TakeFinishLocked();
      finish_status = finish_status_;
    }
  }
  if (cancel) engine_->Cancel(ticket_);
  if (next != nullptr) StartWrite(next);
  if (finish) Finish(finish_status);
}

void GenerateReactor::OnCancel() {
  bool finish = false, cancel = false;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    if (!ending_) {
      ending_ = cancelled_ = cancel = true;
      finish_status_ =
          ToGrpcStatus(absl::CancelledError("cancelled by the client or its deadline"));
      queue_.erase(queue_.begin() + (writing_ ? 1 : 0), queue_.end());
    }
    finish = TakeFinishLocked();
    finish_status = finish_status_;
  }
  if (cancel) engine_->Cancel(ticket_);
  if (finish) Finish(finish_status);
}

void GenerateReactor::OnDone() { Unref(); }

}  // namespace mla::coordinator
