// Tests the Tokenizer: multilingual and ill-formed round trips, merges by rank through a
// hand-built tokenizer.json, special tokens never split, loading errors, and the tiny
// checkpoint's trained tokenizer (MLA_TINY_CHECKPOINT).
#include "coordinator/tokenizer.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "coordinator/special_tokens.h"
#include "coordinator/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_tokenizer_json.h"

namespace mla::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestTokenizerDoc;
using testing::TestTokenizerJson;

Tokenizer Load(const std::string& json) {
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromJson(json);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

// The token texts of `ids`, for readable expectations.
std::vector<std::string> Texts(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> texts;
  for (int32_t id : ids) {
    const AddedToken* added = t.added_tokens().FindId(id);
    texts.push_back(added != nullptr ? added->content : *t.model().TokenText(id));
  }
  return texts;
}

const std::vector<std::string>& SampleTexts() {
  static const auto* texts = new std::vector<std::string>{
      "",
      "Hello, world! It's 2025; we're testing 1234567 tokens.",
      "Grüße aus München: Straße, Übung, schön.",
      "Où est la gare ? Ça va très bien, merci — à bientôt !",
      "今天天气很好，我们去公园散步吧。",
      "日本語のテキストです。カタカナとひらがな。",
      "Привет, мир! Как дела?",
      "안녕하세요 세계",
      "emoji 😀🎉 family 👨‍👩‍👧 flag 🇯🇵 heart ❤️ keycap 1️⃣",
      "code:\n\tint main() {\n    return 0;  // done\n}\n\n\n   trailing   ",
      "mixed 123abc４５６ＡＢＣ\r\n\u00a0nbsp\u3000ideographic space",
  };
  return *texts;
}

TEST(Tokenizer, RoundTripsMultilingualText) {
  const Tokenizer t = Load(TestTokenizerJson({"Ġ t", "h e", "Ġt he", "i n"}));
  for (const std::string& text : SampleTexts()) {
    const std::vector<int32_t> ids = t.Encode(text);
    EXPECT_EQ(t.DecodeBytes(ids).value_or("<error>"), text);
    EXPECT_EQ(t.Decode(ids).value_or("<error>"), text);
    EXPECT_LE(ids.size(), text.size());
  }
}

TEST(Tokenizer, IllFormedBytesRoundTripAsBytesAndDecodeToReplacementCharacters) {
  const Tokenizer t = Load(TestTokenizerJson());
  const std::string fffd(kReplacementCharacter);
  struct Case {
    std::string bytes;
    std::string text;  // what Decode gives
  };
  const std::vector<Case> cases = {
      {"a\xff"
       "b",
       "a" + fffd + "b"},                    // a byte that never starts UTF-8
      {"end \xe4\xb8", "end " + fffd},       // truncated 3-byte character
      {"\xc0\xaf", fffd + fffd},             // overlong '/': two subparts
      {"\xed\xa0\x80", fffd + fffd + fffd},  // a surrogate: three subparts
      {"\xf0\x9f\x98"
       "x\xf0\x9f\x98\x80",
       fffd + "x😀"},  // cut emoji, then a whole one
      {"\x80\x80 12\xfe", fffd + fffd + " 12" + fffd},
  };
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = t.Encode(c.bytes);
    EXPECT_EQ(t.DecodeBytes(ids).value_or("<error>"), c.bytes);
    EXPECT_EQ(t.Decode(ids).value_or("<error>"), c.text);
  }
}

TEST(Tokenizer, MergesApplyByRank) {
  // "abcd": with b+c first, a+bc follows and c+d never gets a chance; with c+d first, a+b is
  // next and nothing joins ab and cd. Same merges, other ranks, other tokens.
  const Tokenizer bc_first = Load(TestTokenizerJson({"b c", "a b", "c d", "a bc"}));
  const Tokenizer cd_first = Load(TestTokenizerJson({"c d", "a b", "b c", "a bc"}));
  EXPECT_THAT(Texts(bc_first, bc_first.Encode("abcd")), ElementsAre("abc", "d"));
  EXPECT_THAT(Texts(cd_first, cd_first.Encode("abcd")), ElementsAre("ab", "cd"));
  // Equal ranks (one pair repeated): the leftmost occurrence merges first.
  const Tokenizer aa = Load(TestTokenizerJson({"a a"}));
  EXPECT_THAT(Texts(aa, aa.Encode("aaa")), ElementsAre("aa", "a"));
  EXPECT_THAT(Texts(aa, aa.Encode("aaaa")), ElementsAre("aa", "aa"));
  // The [["a", "b"]] form of merges means the same.
  nlohmann::ordered_json doc = TestTokenizerDoc({"c d", "a b"});
  doc["model"]["merges"] = nlohmann::ordered_json::array(
      {nlohmann::ordered_json::array({"c", "d"}), nlohmann::ordered_json::array({"a", "b"})});
  const Tokenizer pairs = Load(doc.dump());
  EXPECT_THAT(Texts(pairs, pairs.Encode("abcd")), ElementsAre("ab", "cd"));
}

TEST(Tokenizer, MergesStayInsidePreTokenizedPieces) {
  // "Ġ t" would join the space and the t, but the digits are a piece of their own and the
  // space belongs to " the" only when a letter follows.
  const Tokenizer t = Load(TestTokenizerJson({"Ġ t", "h e", "Ġt he", "1 2", "12 3"}));
  EXPECT_THAT(Texts(t, t.Encode("the the 12345")),
              ElementsAre("t", "he", "Ġthe", "Ġ", "123", "4", "5"));
}

TEST(Tokenizer, SpecialTokensAreNeverSplit) {
  const Tokenizer t = Load(TestTokenizerJson({"< ï"}));
  const std::string text = "hi<｜User｜>1<｜Assistant｜><｜User｜";
  const std::vector<int32_t> ids = t.Encode(text);
  ASSERT_GE(ids.size(), 5u);
  EXPECT_THAT(Texts(t, std::vector<int32_t>(ids.begin(), ids.begin() + 5)),
              ElementsAre("h", "i", std::string(kUserToken), "1", std::string(kAssistantToken)));
  EXPECT_EQ(t.Decode(ids).value_or(""), text);
  EXPECT_EQ(t.Decode(ids, {.skip_special = true}).value_or(""), "hi1<｜User｜");

  const std::vector<int32_t> plain = t.Encode(text, {.parse_special = false});
  for (int32_t id : plain) EXPECT_FALSE(t.IsSpecial(id)) << id;
  EXPECT_EQ(t.Decode(plain).value_or(""), text);

  EXPECT_THAT(t.Encode("x", {.add_bos = true}), ElementsAre(0, t.TokenId("x")));
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.TokenId(kUserToken), 2);
}

TEST(Tokenizer, DecodeRejectsUnknownIds) {
  const Tokenizer t = Load(TestTokenizerJson());
  EXPECT_EQ(t.vocab_size(), 4 + 256);
  const std::vector<int32_t> ids = {5, 260};
  absl::StatusOr<std::string> text = t.Decode(ids);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("token id 260"));
  EXPECT_FALSE(t.Decode(std::vector<int32_t>{-1}).ok());
}

TEST(Tokenizer, RejectsWhatItDoesNotImplement) {
  auto error_of = [](nlohmann::ordered_json doc) {
    return std::string(Tokenizer::FromJson(doc.dump()).status().message());
  };
  nlohmann::ordered_json doc = TestTokenizerDoc({});
  EXPECT_THAT(std::string(Tokenizer::FromJson("{not json").status().message()),
              HasSubstr("not a JSON object"));
  auto wordpiece = doc;
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_THAT(error_of(wordpiece), HasSubstr("model.type"));
  auto nfc = doc;
  nfc["normalizer"] = {{"type", "NFC"}};
  EXPECT_THAT(error_of(nfc), HasSubstr("normalizer"));
  auto metaspace = doc;
  metaspace["decoder"] = {{"type", "Metaspace"}};
  EXPECT_THAT(error_of(metaspace), HasSubstr("decoder"));
  auto missing_byte = doc;
  missing_byte["model"]["vocab"].erase("Ġ");
  EXPECT_THAT(error_of(missing_byte), HasSubstr("no token for byte 32"));
  auto bad_merge = doc;
  bad_merge["model"]["merges"] = {"x yz"};
  EXPECT_THAT(error_of(bad_merge), HasSubstr("model.merges[0]"));
  auto lookbehind = doc;
  lookbehind["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(?<=a)b";
  EXPECT_THAT(error_of(lookbehind), HasSubstr("lookaround"));
  auto single_word = doc;
  single_word["added_tokens"][2]["single_word"] = true;
  EXPECT_THAT(error_of(single_word), HasSubstr("single_word"));
  auto type_error = doc;
  type_error["added_tokens"][2]["special"] = "yes";
  EXPECT_THAT(error_of(type_error), HasSubstr("special: not a boolean"));
}

TEST(Tokenizer, TinyCheckpointTokenizerLoadsAndRoundTrips) {
  const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
  if (dir == nullptr) GTEST_SKIP() << "MLA_TINY_CHECKPOINT is not set (run through ctest)";
  absl::StatusOr<Tokenizer> t = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), 1024);
  EXPECT_EQ(t->bos_id(), 0);
  EXPECT_EQ(t->eos_id(), 1);
  EXPECT_FALSE(t->chat_template().empty());
  size_t bytes = 0, tokens = 0;
  for (const std::string& text : SampleTexts()) {
    const std::vector<int32_t> ids = t->Encode(text);
    EXPECT_EQ(t->Decode(ids).value_or("<error>"), text);
    bytes += text.size();
    tokens += ids.size();
  }
  std::printf("tiny tokenizer: %zu bytes -> %zu tokens (%.2f bytes/token)\n", bytes, tokens,
              static_cast<double>(bytes) / tokens);
  EXPECT_LT(tokens, bytes);
}

}  // namespace
}  // namespace mla::coordinator
