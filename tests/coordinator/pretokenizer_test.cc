// Tests the Pretokenizer with DeepSeek-V3's patterns (digits in threes, CJK runs, the GPT-style
// pattern), its JSON forms, and ill-formed UTF-8 isolation.
#include "coordinator/pretokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Pieces(const Pretokenizer& p, std::string_view text) {
  const std::vector<std::string_view> views = p.Split(text);
  return {views.begin(), views.end()};
}

Pretokenizer DeepSeek() {
  absl::StatusOr<Pretokenizer> p =
      Pretokenizer::FromJson(nlohmann::json(PretokenizerJson(DeepSeekV3SplitPatterns())));
  EXPECT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->has_byte_level());
  EXPECT_EQ(p->num_steps(), 3);
  return *std::move(p);
}

TEST(Pretokenizer, SplitsDigitsInGroupsOfThree) {
  const Pretokenizer p = DeepSeek();
  EXPECT_THAT(Pieces(p, "1234567"), ElementsAre("123", "456", "7"));
  EXPECT_THAT(Pieces(p, "abc1234567你好世界hello"),
              ElementsAre("abc", "123", "456", "7", "你好世界", "hello"));
  EXPECT_THAT(Pieces(p, "pi=3.14159"), ElementsAre("pi", "=", "3", ".", "141", "59"));
  EXPECT_THAT(Pieces(p, "x２０２５"), ElementsAre("x", "２０２", "５"));  // fullwidth digits
}

TEST(Pretokenizer, SeparatesCjkAndKanaRuns) {
  const Pretokenizer p = DeepSeek();
  EXPECT_THAT(Pieces(p, "今天天气很好，我们去公园。"),
              ElementsAre("今天天气很好", "，", "我们去公园", "。"));
  EXPECT_THAT(Pieces(p, "日本語のテキストです。"), ElementsAre("日本語のテキストです", "。"));
  EXPECT_THAT(Pieces(p, "Hi中文ok"), ElementsAre("Hi", "中文", "ok"));
  // Hangul is not in the CJK pattern: the letters rule takes it with its space.
  EXPECT_THAT(Pieces(p, "안녕하세요 세계"), ElementsAre("안녕하세요", " 세계"));
}

TEST(Pretokenizer, GptStylePatternCutsWordsPunctuationAndSpaces) {
  const Pretokenizer p = DeepSeek();
  EXPECT_THAT(Pieces(p, "Hello, world! It's"),
              ElementsAre("Hello", ",", " world", "!", " It", "'s"));
  EXPECT_THAT(Pieces(p, "a   b\n\nc  "), ElementsAre("a", "  ", " b", "\n\n", "c", "  "));
  EXPECT_THAT(Pieces(p, "x.com foo_bar"), ElementsAre("x", ".com", " foo", "_bar"));
  EXPECT_THAT(Pieces(p, "Привет, мир!"), ElementsAre("Привет", ",", " мир", "!"));
  EXPECT_THAT(Pieces(p, "ok 😀🎉!"), ElementsAre("ok", " 😀🎉!"));
}

TEST(Pretokenizer, IsolatesIllFormedUtf8) {
  const Pretokenizer p = DeepSeek();
  EXPECT_THAT(Pieces(p,
                     "ab\xff"
                     "cd 12\xe4\xb8"),
              ElementsAre("ab", "\xff", "cd", " ", "12", "\xe4\xb8"));
  EXPECT_THAT(Pieces(p, "\xed\xa0\x80"), ElementsAre("\xed", "\xa0", "\x80"));
}

TEST(Pretokenizer, ReadsTheOtherJsonForms) {
  absl::StatusOr<Pretokenizer> none = Pretokenizer::FromJson(nlohmann::json());
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(Pieces(*none, "a b"), ElementsAre("a b"));
  const auto gpt2 = nlohmann::json::parse(
      R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})");
  absl::StatusOr<Pretokenizer> p = Pretokenizer::FromJson(gpt2);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Pieces(*p, "Hello world's"), ElementsAre("Hello", " world", "'s"));
  const auto literal = nlohmann::json::parse(
      R"({"type": "Split", "pattern": {"String": "--"}, "behavior": "Isolated"})");
  p = Pretokenizer::FromJson(literal);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->has_byte_level());
  EXPECT_THAT(Pieces(*p, "a--b"), ElementsAre("a", "--", "b"));

  const auto removed = nlohmann::json::parse(
      R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Removed"})");
  EXPECT_THAT(std::string(Pretokenizer::FromJson(removed).status().message()),
              HasSubstr("pre_tokenizer.behavior"));
  const auto prefix = nlohmann::json::parse(R"({"type": "ByteLevel"})");  // HF default: true
  EXPECT_THAT(std::string(Pretokenizer::FromJson(prefix).status().message()),
              HasSubstr("add_prefix_space"));
  const auto digits = nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Digits", "individual_digits": true}]})");
  EXPECT_THAT(std::string(Pretokenizer::FromJson(digits).status().message()),
              HasSubstr("pre_tokenizer.pretokenizers[0]: pre-tokenizer type \"Digits\""));
}

}  // namespace
}  // namespace mla::coordinator
