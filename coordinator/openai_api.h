// The OpenAI-compatible request and response bodies of the HTTP API (/v1/completions,
// /v1/chat/completions, /v1/models): parsing a JSON body into a GenerateRequest for the served
// model, and writing the JSON answers, stream chunks and errors.
//
// Supported request fields: model (if given, must be the served model's name), prompt (a
// string, a one-string array or an array of token ids) or messages (system / user / assistant,
// content a string or text parts), max_tokens (chat also max_completion_tokens; completions
// default 16, chat up to the context), temperature [0, 2], top_p (0, 1], n (1 only), seed, stop
// (a string or up to 4), stream, stream_options.include_usage, ignore_eos, user (ignored).
// Unsupported options with a non-default value (echo, logprobs, best_of > 1, penalties) are
// refused, not ignored.
//
// Errors are ApiErrors: an HTTP status and OpenAI's {"error": {message, type, param, code}}.
// Pure functions; any thread. No exceptions (nlohmann::json is used in its non-throwing forms).
#ifndef MLASERVE_COORDINATOR_OPENAI_API_H_
#define MLASERVE_COORDINATOR_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/model_card.h"
#include "coordinator/tokenizer.h"
#include "mla/v1/inference.pb.h"

namespace mla::coordinator {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty = null
  std::string code;   // empty = null
};

enum class ApiKind { kCompletion, kChat };

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  v1::GenerateRequest generate;    // prompt_token_ids filled (encoded here), sampling, max_tokens
  std::vector<std::string> stop;   // stop strings
  bool stream = false;
  bool include_usage = false;      // stream_options.include_usage
};

// Parses and encodes a request body. On failure returns false and fills *error.
bool ParseOpenAiRequest(ApiKind kind, std::string_view body, const ModelCard& model,
                        const Tokenizer* tokenizer, OpenAiRequest* out, ApiError* error);

// An engine or validation error as an ApiError (400 / 404 / 429 / 503 / 500), with the
// GenerateRequest field named in the message mapped to the OpenAI parameter.
ApiError ApiErrorFromStatus(const absl::Status& status, ApiKind kind);

std::string ErrorJson(const ApiError& error);

// The whole (non-streamed) answer.
std::string CompletionJson(ApiKind kind, const std::string& id, int64_t created,
                           const std::string& model, const std::string& text,
                           const std::string& finish_reason, int64_t prompt_tokens,
                           int64_t completion_tokens);
// One stream chunk's JSON (without the "data: " framing). `first` adds the assistant role
// (chat); an empty finish_reason is null.
std::string ChunkJson(ApiKind kind, const std::string& id, int64_t created,
                      const std::string& model, const std::string& text, bool first,
                      const std::string& finish_reason);
// The usage-only final chunk (stream_options.include_usage).
std::string UsageChunkJson(ApiKind kind, const std::string& id, int64_t created,
                           const std::string& model, int64_t prompt_tokens,
                           int64_t completion_tokens);
// GET /v1/models (and /v1/models/{name}: `one`).
std::string ModelsJson(const std::string& model, int64_t created, bool one);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_OPENAI_API_H_
