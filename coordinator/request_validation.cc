#include "coordinator/request_validation.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mla::coordinator {
namespace {

absl::Status Invalid(auto&&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

absl::Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids,
                           const char* field, int32_t vocab_size) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return Invalid(field, "[", i, "] is ", ids[i], "; token ids must be in [0, ", vocab_size,
                     ")");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const v1::SamplingParams& s) {
  if (!std::isfinite(s.temperature()) || s.temperature() < 0.0f) {
    return Invalid("sampling.temperature is ", s.temperature(),
                   "; must be a finite number >= 0 (0 = greedy)");
  }
  if (!std::isfinite(s.top_p()) || s.top_p() < 0.0f || s.top_p() > 1.0f) {
    return Invalid("sampling.top_p is ", s.top_p(), "; must be in (0, 1] (0 or unset means 1)");
  }
  if (s.top_k() < 0) {
    return Invalid("sampling.top_k is ", s.top_k(), "; must be >= 0 (0 = no limit)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const v1::GenerateRequest& request,
                                                         const ModelCard& model) {
  if (request.input_case() == v1::GenerateRequest::kPromptText) {
    return Invalid("prompt_text is not supported yet (the server has no tokenizer); send "
                   "prompt_token_ids");
  }
  const auto& ids = request.prompt_token_ids().ids();
  const int64_t context = model.max_context_len;
  if (ids.empty()) {
    return Invalid("prompt_token_ids is empty; give between 1 and ", context - 1, " tokens");
  }
  if (ids.size() >= context) {
    return Invalid("prompt_token_ids has ", ids.size(), " tokens; at most ", context - 1,
                   " fit (the model's context is ", context, " tokens, output included)");
  }
  if (absl::Status s = CheckTokenIds(ids, "prompt_token_ids", model.vocab_size); !s.ok()) return s;

  const int64_t room = context - ids.size();
  if (request.max_tokens() > room) {
    return Invalid("max_tokens is ", request.max_tokens(), "; with a prompt of ", ids.size(),
                   " tokens it must be in [0, ", room, "] (the model's context is ", context,
                   " tokens; 0 = up to the context)");
  }
  if (absl::Status s = CheckSampling(request.sampling()); !s.ok()) return s;
  if (request.stop_token_ids_size() > kMaxStopTokenIds) {
    return Invalid("stop_token_ids has ", request.stop_token_ids_size(), " entries; at most ",
                   kMaxStopTokenIds);
  }
  if (absl::Status s = CheckTokenIds(request.stop_token_ids(), "stop_token_ids",
                                     model.vocab_size);
      !s.ok()) {
    return s;
  }
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id is ", request.request_id().size(), " bytes; at most ",
                   kMaxRequestIdBytes);
  }

  ValidatedRequest out;
  out.prompt.assign(ids.begin(), ids.end());
  GenerationParams& p = out.params;
  p.max_tokens = request.max_tokens() == 0 ? room : request.max_tokens();
  p.sampling.temperature = request.sampling().temperature();
  p.sampling.top_p = request.sampling().top_p() == 0.0f ? 1.0f : request.sampling().top_p();
  p.sampling.top_k = request.sampling().top_k();
  out.has_seed = request.sampling().has_seed();
  p.sampling.seed = request.sampling().seed();
  p.stop_token_ids.assign(request.stop_token_ids().begin(), request.stop_token_ids().end());
  p.ignore_eos = request.ignore_eos();
  p.priority = request.priority();
  out.request_id = request.request_id();
  return out;
}

}  // namespace mla::coordinator
