// request_validation_fuzzer: mla::coordinator::ValidateGenerateRequest over arbitrary
// serialized mla.v1.GenerateRequest messages (what a client can put on the wire), against three
// model cards: the synthetic tiny model, DeepSeek-V3, and a degenerate 2-token one.
//
// Properties: an input that parses (ParseFromArray) validates without crashing, and either
// fails with InvalidArgument or gives a request the scheduler can take: a non-empty prompt of
// tokens in [0, vocab_size), prompt + max_tokens within the context, max_tokens >= 1, finite
// temperature >= 0, top_p in (0, 1], top_k >= 0, at most kMaxStopTokenIds stop ids (tokens),
// a request_id of at most kMaxRequestIdBytes, and every other field copied unchanged.
// Re-serializing the message and validating again gives the same outcome.
// Seeds: tests/fuzz/corpus/request_validation_fuzzer (made by tests/fuzz/make_seeds.py).
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "coordinator/model_card.h"
#include "coordinator/request_validation.h"
#include "mla/v1/inference.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using mla::coordinator::ModelCard;
using mla::coordinator::ValidatedRequest;

ModelCard Card(int32_t vocab_size, int32_t max_context_len) {
  ModelCard card;
  card.name = "fuzz";
  card.vocab_size = vocab_size;
  card.num_layers = 4;
  card.num_heads = 8;
  card.hidden_size = 256;
  card.max_context_len = max_context_len;
  card.cache_bytes_per_token = 1024;
  card.eos_token_id = 1;
  return card;
}

void CheckValid(const mla::v1::GenerateRequest& request, const ModelCard& card,
                const ValidatedRequest& v) {
  using mla::coordinator::kMaxRequestIdBytes;
  using mla::coordinator::kMaxStopTokenIds;
  FUZZ_CHECK(request.input_case() != mla::v1::GenerateRequest::kPromptText);
  FUZZ_CHECK(!v.prompt.empty());
  FUZZ_CHECK(static_cast<int64_t>(v.prompt.size()) < card.max_context_len);
  FUZZ_CHECK(static_cast<int>(v.prompt.size()) == request.prompt_token_ids().ids_size());
  for (int i = 0; i < request.prompt_token_ids().ids_size(); ++i) {
    FUZZ_CHECK(v.prompt[i] == request.prompt_token_ids().ids(i));
    FUZZ_CHECK(v.prompt[i] >= 0 && v.prompt[i] < card.vocab_size, v.prompt[i]);
  }
  const auto& p = v.params;
  FUZZ_CHECK(p.max_tokens >= 1, p.max_tokens);
  FUZZ_CHECK(static_cast<int64_t>(v.prompt.size()) + p.max_tokens <= card.max_context_len);
  FUZZ_CHECK(request.max_tokens() == 0 || p.max_tokens == request.max_tokens());
  FUZZ_CHECK(std::isfinite(p.sampling.temperature) && p.sampling.temperature >= 0.0f);
  FUZZ_CHECK(p.sampling.top_p > 0.0f && p.sampling.top_p <= 1.0f, p.sampling.top_p);
  FUZZ_CHECK(p.sampling.top_k >= 0);
  FUZZ_CHECK(v.has_seed == request.sampling().has_seed());
  FUZZ_CHECK(!v.has_seed || p.sampling.seed == request.sampling().seed());
  FUZZ_CHECK(static_cast<int>(p.stop_token_ids.size()) <= kMaxStopTokenIds);
  FUZZ_CHECK(static_cast<int>(p.stop_token_ids.size()) == request.stop_token_ids_size());
  for (int32_t id : p.stop_token_ids) FUZZ_CHECK(id >= 0 && id < card.vocab_size, id);
  FUZZ_CHECK(p.ignore_eos == request.ignore_eos() && p.priority == request.priority());
  FUZZ_CHECK(v.request_id.size() <= kMaxRequestIdBytes && v.request_id == request.request_id());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelCard* const kCards[] = {new ModelCard(Card(1024, 5120)),
                                            new ModelCard(Card(129280, 163840)),
                                            new ModelCard(Card(2, 2))};
  mla::v1::GenerateRequest request;
  if (size > static_cast<size_t>(INT32_MAX)) return 0;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  mla::v1::GenerateRequest reparsed;
  FUZZ_CHECK(reparsed.ParseFromString(request.SerializeAsString()));
  for (const ModelCard* card : kCards) {
    auto validated = mla::coordinator::ValidateGenerateRequest(request, *card);
    auto again = mla::coordinator::ValidateGenerateRequest(reparsed, *card);
    FUZZ_CHECK(validated.ok() == again.ok());
    if (!validated.ok()) {
      FUZZ_CHECK(absl::IsInvalidArgument(validated.status()), validated.status().ToString());
      FUZZ_CHECK(validated.status() == again.status(), validated.status().ToString());
      continue;
    }
    CheckValid(request, *card, *validated);
  }
  return 0;
}
