#include "coordinator/generate_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/chat_template.h"
#include "coordinator/request_validation.h"
#include "coordinator/status.h"

namespace mla::coordinator {
namespace {

// The request with prompt_text (bos first) or chat (the chat format) replaced by its tokens;
// FailedPrecondition without a tokenizer, InvalidArgument for a bad chat.
absl::StatusOr<v1::GenerateRequest> EncodePromptText(const v1::GenerateRequest& request,
                                                     const Tokenizer* tokenizer) {
  if (tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        "this model has no tokenizer (no tokenizer.json in its checkpoint); send "
        "prompt_token_ids");
  }
  std::vector<int32_t> ids;
  if (request.input_case() == v1::GenerateRequest::kChat) {
    std::vector<ChatMessage> messages;
    for (const v1::ChatMessage& m : request.chat().messages()) {
      messages.push_back({m.role(), m.content()});
    }
    if (messages.empty()) return absl::InvalidArgumentError("chat.messages is empty");
    absl::StatusOr<std::vector<ChatPiece>> pieces = RenderDeepSeekV3Chat(messages);
    if (!pieces.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chat: ", pieces.status().message()));
    }
    absl::StatusOr<std::vector<int32_t>> encoded = EncodeChat(*tokenizer, *pieces);
    if (!encoded.ok()) return encoded.status();
    ids = std::move(*encoded);
  } else {
    EncodeOptions options;
    options.add_bos = true;
    ids = tokenizer->Encode(request.prompt_text(), options);
  }
  v1::GenerateRequest encoded = request;
  encoded.mutable_prompt_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  return encoded;
}

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
                                 const v1::GenerateRequest& request, std::string request_id,
                                 const Tokenizer* tokenizer, ServingMetrics* metrics)
    : engine_(engine), request_id_(std::move(request_id)), trace_(metrics, "grpc", request_id_) {
  if (tokenizer != nullptr) {
    DecodeOptions decode;
    decode.skip_special = true;
    decoder_ = std::make_unique<StreamDecoder>(tokenizer, decode);
  }
  absl::StatusOr<ValidatedRequest> validated = absl::UnknownError("unset");
  if (request.input_case() == v1::GenerateRequest::kPromptText ||
      request.input_case() == v1::GenerateRequest::kChat) {
    absl::StatusOr<v1::GenerateRequest> encoded = EncodePromptText(request, tokenizer);
    validated = encoded.ok() ? ValidateGenerateRequest(*encoded, model)
                             : absl::StatusOr<ValidatedRequest>(encoded.status());
  } else {
    validated = ValidateGenerateRequest(request, model);
  }
  absl::Status status = validated.status();
  if (validated.ok()) {
    refs_.fetch_add(1, std::memory_order_relaxed);  // the engine's, if it takes the request
    status = engine_->Submit(std::move(*validated), this, &ticket_);
    if (!status.ok()) refs_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!status.ok()) {
    trace_.Finish(status, "", 0, 0);
    Enqueue({}, /*final=*/true, ToGrpcStatus(status));
  }
}

void GenerateReactor::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void GenerateReactor::OnUpdate(const SequenceUpdate& update) {
  const bool final = update.finish_reason != FinishReason::kNone;
  v1::GenerateResponse response;
  response.mutable_token_ids()->Assign(update.new_tokens.begin(), update.new_tokens.end());
  response.set_request_id(request_id_);
  trace_.OnTokens(static_cast<int64_t>(update.new_tokens.size()));
  if (decoder_ != nullptr) {
    std::string text;
    for (int32_t id : update.new_tokens) {
      absl::StatusOr<std::string> piece = decoder_->Push(id);
      if (piece.ok()) text += *piece;  // ids come from the model's vocabulary
    }
    if (final) text += decoder_->Finish();
    response.set_text(std::move(text));
  }
  if (final) {
    trace_.Finish(absl::OkStatus(), FinishReasonName(update.finish_reason), update.num_prompt_tokens,
                  update.num_output_tokens);
    response.set_finish_reason(ToProto(update.finish_reason));
    response.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(update.num_prompt_tokens));
    response.mutable_usage()->set_completion_tokens(
        static_cast<uint32_t>(update.num_output_tokens));
  }
  Enqueue(std::move(response), final, grpc::Status::OK);
  if (final) Unref();  // the engine is done with this request
}

void GenerateReactor::OnError(const absl::Status& status) {
  trace_.Finish(status, "", 0, 0);
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
    const bool has_payload = response.token_ids_size() > 0 || response.has_finish_reason() ||
                             !response.text().empty();
    if (has_payload) {
      if (queue_.size() >= 2) {  // the back is not in flight: merge into it
        v1::GenerateResponse& back = queue_.back();
        back.mutable_token_ids()->MergeFrom(response.token_ids());
        back.mutable_text()->append(response.text());
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
