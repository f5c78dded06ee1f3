// ValidateGenerateRequest and ParseModelCard: every field out of range is INVALID_ARGUMENT
// naming the field and its range; proto defaults resolve as documented. ToGrpcStatus keeps the
// code and the message.
#include "coordinator/request_validation.h"

#include <cmath>
#include <string>

#include "coordinator/model_card.h"
#include "coordinator/status.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

ModelCard Card() {
  ModelCard card;
  card.vocab_size = 100;
  card.max_context_len = 50;
  return card;
}

v1::GenerateRequest Request(std::vector<int32_t> prompt, uint32_t max_tokens) {
  v1::GenerateRequest r;
  r.mutable_prompt_token_ids()->mutable_ids()->Assign(prompt.begin(), prompt.end());
  r.set_max_tokens(max_tokens);
  return r;
}

void ExpectInvalid(const v1::GenerateRequest& r, const std::string& fragment) {
  absl::StatusOr<ValidatedRequest> v = ValidateGenerateRequest(r, Card());
  ASSERT_FALSE(v.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find(fragment), std::string::npos) << v.status().message();
}

TEST(RequestValidation, NamesTheFieldAndItsRange) {
  ExpectInvalid(Request({}, 4), "prompt_token_ids is empty; give between 1 and 49");
  ExpectInvalid(Request(std::vector<int32_t>(50, 1), 1), "at most 49 fit");
  ExpectInvalid(Request({1, 100}, 4), "prompt_token_ids[1] is 100; token ids must be in [0, 100)");
  ExpectInvalid(Request({-5}, 4), "prompt_token_ids[0] is -5");
  ExpectInvalid(Request(std::vector<int32_t>(40, 1), 11), "max_tokens is 11; with a prompt of 40");
  ExpectInvalid(Request(std::vector<int32_t>(40, 1), 11), "[0, 10]");
  v1::GenerateRequest r = Request({1}, 4);
  r.mutable_sampling()->set_temperature(-1);
  ExpectInvalid(r, "sampling.temperature is -1; must be a finite number >= 0");
  r.mutable_sampling()->set_temperature(INFINITY);
  ExpectInvalid(r, "sampling.temperature");
  r = Request({1}, 4);
  r.mutable_sampling()->set_top_p(1.01f);
  ExpectInvalid(r, "sampling.top_p is 1.01; must be in (0, 1]");
  r.mutable_sampling()->set_top_p(NAN);
  ExpectInvalid(r, "sampling.top_p");
  r = Request({1}, 4);
  r.mutable_sampling()->set_top_k(-1);
  ExpectInvalid(r, "sampling.top_k is -1; must be >= 0");
  r = Request({1}, 4);
  r.add_stop_token_ids(100);
  ExpectInvalid(r, "stop_token_ids[0] is 100");
  r = Request({1}, 4);
  for (int i = 0; i <= kMaxStopTokenIds; ++i) r.add_stop_token_ids(1);
  ExpectInvalid(r, "stop_token_ids has 1025 entries; at most 1024");
  r = Request({1}, 4);
  r.set_request_id(std::string(kMaxRequestIdBytes + 1, 'x'));
  ExpectInvalid(r, "request_id is 257 bytes; at most 256");
  v1::GenerateRequest text;
  text.set_prompt_text("hi");
  ExpectInvalid(text, "prompt_text is not supported yet");
}

TEST(RequestValidation, ResolvesProtoDefaults) {
  v1::GenerateRequest r = Request({1, 2, 3}, 0);
  r.mutable_sampling()->set_temperature(0.5f);
  r.mutable_sampling()->set_top_k(7);
  r.add_stop_token_ids(9);
  r.set_ignore_eos(true);
  r.set_priority(-2);
  r.set_request_id("abc");
  absl::StatusOr<ValidatedRequest> v = ValidateGenerateRequest(r, Card());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(v->params.max_tokens, 47);             // 0 = up to the context (50 - 3)
  EXPECT_EQ(v->params.sampling.top_p, 1.0f);       // 0 = 1
  EXPECT_EQ(v->params.sampling.temperature, 0.5f);
  EXPECT_EQ(v->params.sampling.top_k, 7);
  EXPECT_FALSE(v->has_seed);
  EXPECT_EQ(v->params.stop_token_ids, (std::vector<int32_t>{9}));
  EXPECT_TRUE(v->params.ignore_eos);
  EXPECT_EQ(v->params.priority, -2);
  EXPECT_EQ(v->request_id, "abc");
  r.mutable_sampling()->set_seed(0);  // an explicit 0 is a seed
  v = ValidateGenerateRequest(r, Card());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->has_seed);
  EXPECT_EQ(v->params.sampling.seed, 0u);
  // The edges of the ranges are allowed.
  EXPECT_TRUE(ValidateGenerateRequest(Request(std::vector<int32_t>(49, 99), 1), Card()).ok());
}

TEST(ModelCard, ParsesTheFieldsItNeeds) {
  const std::string json = R"({"vocab_size": 1024, "num_hidden_layers": 4,
      "num_attention_heads": 8, "hidden_size": 256, "max_position_embeddings": 5120,
      "kv_lora_rank": 64, "qk_rope_head_dim": 16, "eos_token_id": 1})";
  absl::StatusOr<ModelCard> card = ParseModelCard(json);
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_EQ(card->vocab_size, 1024);
  EXPECT_EQ(card->max_context_len, 5120);
  EXPECT_EQ(card->cache_bytes_per_token, 2 * 80 * 4);
  EXPECT_EQ(card->eos_token_id, 1);
  EXPECT_EQ(card->config_hash.size(), 16u);
  EXPECT_NE(ParseModelCard(json + " ")->config_hash, card->config_hash) << "hashes the bytes";

  absl::StatusOr<ModelCard> missing = ParseModelCard(R"({"vocab_size": 10})");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("num_hidden_layers is missing"), std::string::npos)
      << missing.status().message();
  EXPECT_FALSE(ParseModelCard("not json").ok());
  EXPECT_FALSE(ParseModelCard(R"({"vocab_size": "many"})").ok());
}

TEST(Status, ConvertsCodeAndMessage) {
  const grpc::Status s = ToGrpcStatus(absl::ResourceExhaustedError("queue is full"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "queue is full");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace mla::coordinator
