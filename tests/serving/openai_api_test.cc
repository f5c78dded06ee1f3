#include "coordinator/openai_api.h"

#include <string>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

ModelCard Card() {
  ModelCard card;
  card.name = "tiny";
  card.vocab_size = 1024;
  card.max_context_len = 5120;
  return card;
}

TEST(OpenAiApi, ParsesACompletionWithTokenIdsAndSampling) {
  OpenAiRequest request;
  ApiError error;
  ASSERT_TRUE(ParseOpenAiRequest(ApiKind::kCompletion,
                                 R"({"model": "tiny", "prompt": [5, 6, 7], "max_tokens": 9,
                                     "temperature": 0.5, "top_p": 0.9, "seed": 42,
                                     "stop": ["x", "yz"], "stream": true,
                                     "stream_options": {"include_usage": true}})",
                                 Card(), nullptr, &request, &error))
      << error.message;
  EXPECT_EQ(request.generate.prompt_token_ids().ids_size(), 3);
  EXPECT_EQ(request.generate.max_tokens(), 9u);
  EXPECT_FLOAT_EQ(request.generate.sampling().temperature(), 0.5f);
  EXPECT_EQ(request.generate.sampling().seed(), 42u);
  EXPECT_EQ(request.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.include_usage);
}

TEST(OpenAiApi, RefusesBadFieldsNamingTheParameter) {
  struct Case {
    const char* body;
    int status;
    const char* param;
  };
  const Case cases[] = {
      {"[1, 2]", 400, ""},
      {"{\"prompt\": [1], \"max_tokens\": -1}", 400, "max_tokens"},
      {"{\"prompt\": [1], \"max_tokens\": 1.5}", 400, "max_tokens"},
      {"{\"prompt\": [1], \"temperature\": \"hot\"}", 400, "temperature"},
      {"{\"prompt\": [1], \"n\": 3}", 400, "n"},
      {"{\"prompt\": [1], \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", 400, "stop"},
      {"{\"prompt\": [1], \"logprobs\": 2}", 400, "logprobs"},
      {"{\"prompt\": [1], \"model\": \"big\"}", 404, "model"},
      {"{\"prompt\": \"text\"}", 400, "prompt"},  // no tokenizer
      {"{}", 400, "prompt"},
  };
  for (const Case& c : cases) {
    OpenAiRequest request;
    ApiError error;
    EXPECT_FALSE(ParseOpenAiRequest(ApiKind::kCompletion, c.body, Card(), nullptr, &request,
                                    &error))
        << c.body;
    EXPECT_EQ(error.http_status, c.status) << c.body;
    EXPECT_EQ(error.param, c.param) << c.body << ": " << error.message;
  }
}

TEST(OpenAiApi, ErrorJsonHasOpenAisShape) {
  ApiError error;
  error.message = "max_tokens is -1";
  error.param = "max_tokens";
  EXPECT_EQ(ErrorJson(error),
            R"({"error":{"code":null,"message":"max_tokens is -1","param":"max_tokens",)"
            R"("type":"invalid_request_error"}})");
}

TEST(OpenAiApi, StatusCodesMapToHttp) {
  EXPECT_EQ(ApiErrorFromStatus(absl::ResourceExhaustedError("full"), ApiKind::kChat).http_status,
            429);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnavailableError("down"), ApiKind::kChat).http_status, 503);
  const ApiError e =
      ApiErrorFromStatus(absl::InvalidArgumentError("sampling.top_p is 2"), ApiKind::kChat);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "top_p");
}

}  // namespace
}  // namespace mla::coordinator
