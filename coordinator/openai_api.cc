#include "coordinator/openai_api.h"

#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/chat_template.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator {
namespace {

using json = nlohmann::json;

constexpr int kMaxStopStrings = 4;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool Fail(ApiError* error, std::string message, std::string param, int http_status = 400) {
  error->http_status = http_status;
  error->message = std::move(message);
  error->type = "invalid_request_error";
  error->param = std::move(param);
  error->code.clear();
  return false;
}

const json* Field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

// A number field within [lo, hi]; absent leaves *out.
bool NumberField(const json& body, const char* name, double lo, double hi, float* out,
                 ApiError* error) {
  const json* v = Field(body, name);
  if (v == nullptr) return true;
  if (!v->is_number()) return Fail(error, absl::StrCat(name, " must be a number"), name);
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return Fail(error, absl::StrCat(name, " is ", d, "; must be in [", lo, ", ", hi, "]"), name);
  }
  *out = static_cast<float>(d);
  return true;
}

bool ParseStop(const json& body, std::vector<std::string>* stop, ApiError* error) {
  const json* v = Field(body, "stop");
  if (v == nullptr) return true;
  if (v->is_string()) {
    stop->push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) {
      return Fail(error, absl::StrCat("stop has ", v->size(), " strings; at most ",
                                      kMaxStopStrings),
                  "stop");
    }
    for (const json& s : *v) {
      if (!s.is_string()) return Fail(error, "stop must be a string or an array of strings", "stop");
      stop->push_back(s.get<std::string>());
    }
  } else {
    return Fail(error, "stop must be a string or an array of strings", "stop");
  }
  for (const std::string& s : *stop) {
    if (s.empty()) return Fail(error, "stop strings must not be empty", "stop");
  }
  return true;
}

// Options we do not implement: refused unless they have their default value.
bool RefuseUnsupported(const json& body, ApiError* error) {
  struct Default {
    const char* name;
    json value;
  };
  const Default defaults[] = {{"echo", false},           {"logprobs", false},
                              {"best_of", 1},            {"presence_penalty", 0},
                              {"frequency_penalty", 0},  {"top_logprobs", 0},
                              {"suffix", ""},            {"logit_bias", json::object()}};
  for (const Default& d : defaults) {
    const json* v = Field(body, d.name);
    if (v != nullptr && *v != d.value) {
      return Fail(error, absl::StrCat(d.name, " is not supported by this server"), d.name);
    }
  }
  return true;
}

bool ParsePrompt(const json& body, const Tokenizer* tokenizer, v1::GenerateRequest* out,
                 ApiError* error) {
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return Fail(error, "prompt is required", "prompt");
  const json* p = prompt;
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) p = &(*prompt)[0];
  if (p->is_string()) {
    if (tokenizer == nullptr) return Fail(error, "this model has no tokenizer", "prompt");
    EncodeOptions options;
    options.add_bos = true;
    const std::vector<int32_t> ids = tokenizer->Encode(p->get<std::string>(), options);
    out->mutable_prompt_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
    return true;
  }
  if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    for (const json& id : *p) {
      if (!id.is_number_integer()) {
        return Fail(error, "prompt must be a string or an array of token ids", "prompt");
      }
      const int64_t v = id.get<int64_t>();
      if (v < 0 || v > INT32_MAX) {
        return Fail(error, absl::StrCat("prompt token id ", v, " is out of range"), "prompt");
      }
      out->mutable_prompt_token_ids()->add_ids(static_cast<int32_t>(v));
    }
    return true;
  }
  if (p->is_array() && p->size() > 1) {
    return Fail(error, "only one prompt per request is supported (n = 1, one prompt)", "prompt");
  }
  return Fail(error, "prompt must be a non-empty string or an array of token ids", "prompt");
}

bool ParseMessages(const json& body, const Tokenizer* tokenizer, v1::GenerateRequest* out,
                   ApiError* error) {
  const json* messages = Field(body, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    return Fail(error, "messages must be a non-empty array", "messages");
  }
  std::vector<ChatMessage> chat;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Fail(error, absl::StrCat(where, " must be an object"), "messages");
    const json* role = Field(m, "role");
    const json* content = Field(m, "content");
    if (role == nullptr || !role->is_string()) {
      return Fail(error, absl::StrCat(where, ".role must be a string"), "messages");
    }
    ChatMessage message;
    message.role = role->get<std::string>();
    if (message.role == "developer") message.role = "system";
    if (content == nullptr) {
      // an empty message
    } else if (content->is_string()) {
      message.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        const json* text = part.is_object() ? Field(part, "text") : nullptr;
        const json* type = part.is_object() ? Field(part, "type") : nullptr;
        if (type == nullptr || *type != "text" || text == nullptr || !text->is_string()) {
          return Fail(error, absl::StrCat(where, ".content: only text parts are supported"),
                      "messages");
        }
        message.content += text->get<std::string>();
      }
    } else {
      return Fail(error, absl::StrCat(where, ".content must be a string or text parts"),
                  "messages");
    }
    chat.push_back(std::move(message));
  }
  if (tokenizer == nullptr) return Fail(error, "this model has no tokenizer", "messages");
  absl::StatusOr<std::vector<ChatPiece>> pieces = RenderDeepSeekV3Chat(chat);
  if (!pieces.ok()) return Fail(error, std::string(pieces.status().message()), "messages");
  absl::StatusOr<std::vector<int32_t>> ids = EncodeChat(*tokenizer, *pieces);
  if (!ids.ok()) return Fail(error, std::string(ids.status().message()), "messages");
  out->mutable_prompt_token_ids()->mutable_ids()->Assign(ids->begin(), ids->end());
  return true;
}

json Usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json NullIfEmpty(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

}  // namespace

bool ParseOpenAiRequest(ApiKind kind, std::string_view body_text, const ModelCard& model,
                        const Tokenizer* tokenizer, OpenAiRequest* out, ApiError* error) {
  out->kind = kind;
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Fail(error, "the request body must be a JSON object", "");
  }
  if (const json* m = Field(body, "model"); m != nullptr) {
    if (!m->is_string() || m->get<std::string>() != model.name) {
      Fail(error, absl::StrCat("The model '", m->is_string() ? m->get<std::string>() : Dump(*m),
                               "' does not exist; this server serves '", model.name, "'"),
           "model", 404);
      error->code = "model_not_found";
      return false;
    }
  }
  if (!RefuseUnsupported(body, error)) return false;
  v1::GenerateRequest& g = out->generate;
  if (kind == ApiKind::kCompletion ? !ParsePrompt(body, tokenizer, &g, error)
                                   : !ParseMessages(body, tokenizer, &g, error)) {
    return false;
  }
  int64_t max_tokens = kind == ApiKind::kCompletion ? 16 : 0;  // 0: up to the context
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    const json* v = Field(body, name);
    if (v == nullptr) continue;
    if (!v->is_number_integer() || v->get<int64_t>() < 1 || v->get<int64_t>() > UINT32_MAX) {
      return Fail(error, absl::StrCat(name, " is ", Dump(*v), "; must be an integer >= 1"), name);
    }
    max_tokens = v->get<int64_t>();
  }
  g.set_max_tokens(static_cast<uint32_t>(max_tokens));
  float temperature = 1, top_p = 1, n = 1;
  if (!NumberField(body, "temperature", 0, 2, &temperature, error) ||
      !NumberField(body, "top_p", 0, 1, &top_p, error) ||
      !NumberField(body, "n", 1, 1, &n, error)) {
    return false;
  }
  if (top_p <= 0) return Fail(error, "top_p is 0; must be in (0, 1]", "top_p");
  g.mutable_sampling()->set_temperature(temperature);
  g.mutable_sampling()->set_top_p(top_p);
  if (const json* seed = Field(body, "seed"); seed != nullptr) {
    if (!seed->is_number_integer()) return Fail(error, "seed must be an integer", "seed");
    g.mutable_sampling()->set_seed(seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                              : static_cast<uint64_t>(
                                                                    seed->get<int64_t>()));
  }
  if (const json* v = Field(body, "ignore_eos"); v != nullptr) {
    if (!v->is_boolean()) return Fail(error, "ignore_eos must be a boolean", "ignore_eos");
    g.set_ignore_eos(v->get<bool>());
  }
  if (!ParseStop(body, &out->stop, error)) return false;
  if (const json* v = Field(body, "stream"); v != nullptr) {
    if (!v->is_boolean()) return Fail(error, "stream must be a boolean", "stream");
    out->stream = v->get<bool>();
  }
  if (const json* v = Field(body, "stream_options"); v != nullptr && v->is_object()) {
    const json* usage = Field(*v, "include_usage");
    out->include_usage = usage != nullptr && usage->is_boolean() && usage->get<bool>();
  }
  return true;
}

ApiError ApiErrorFromStatus(const absl::Status& status, ApiKind kind) {
  ApiError e;
  e.message = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      e.http_status = 400;
      break;
    case absl::StatusCode::kNotFound:
      e.http_status = 404;
      e.type = "not_found_error";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
      e.http_status = 503;
      e.type = "service_unavailable_error";
      break;
    case absl::StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.type = "authentication_error";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  // Name the OpenAI parameter for a GenerateRequest field the message starts with.
  const std::string& m = e.message;
  if (absl::StartsWith(m, "max_tokens")) e.param = "max_tokens";
  if (absl::StartsWith(m, "sampling.temperature")) e.param = "temperature";
  if (absl::StartsWith(m, "sampling.top_p")) e.param = "top_p";
  if (absl::StartsWith(m, "prompt_token_ids")) {
    e.param = kind == ApiKind::kChat ? "messages" : "prompt";
  }
  return e;
}

std::string ErrorJson(const ApiError& error) {
  return Dump({{"error",
                {{"message", error.message},
                 {"type", error.type},
                 {"param", NullIfEmpty(error.param)},
                 {"code", NullIfEmpty(error.code)}}}});
}

std::string CompletionJson(ApiKind kind, const std::string& id, int64_t created,
                           const std::string& model, const std::string& text,
                           const std::string& finish_reason, int64_t prompt_tokens,
                           int64_t completion_tokens) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
  if (kind == ApiKind::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  return Dump({{"id", id},
               {"object", kind == ApiKind::kChat ? "chat.completion" : "text_completion"},
               {"created", created},
               {"model", model},
               {"choices", json::array({choice})},
               {"usage", Usage(prompt_tokens, completion_tokens)}});
}

std::string ChunkJson(ApiKind kind, const std::string& id, int64_t created,
                      const std::string& model, const std::string& text, bool first,
                      const std::string& finish_reason) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", NullIfEmpty(finish_reason)}};
  if (kind == ApiKind::kChat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (first || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return Dump({{"id", id},
               {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
               {"created", created},
               {"model", model},
               {"choices", json::array({choice})}});
}

std::string UsageChunkJson(ApiKind kind, const std::string& id, int64_t created,
                           const std::string& model, int64_t prompt_tokens,
                           int64_t completion_tokens) {
  return Dump({{"id", id},
               {"object", kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
               {"created", created},
               {"model", model},
               {"choices", json::array()},
               {"usage", Usage(prompt_tokens, completion_tokens)}});
}

std::string ModelsJson(const std::string& model, int64_t created, bool one) {
  json card = {{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "mlaserve"}};
  if (one) return Dump(card);
  return Dump({{"object", "list"}, {"data", json::array({card})}});
}

}  // namespace mla::coordinator
