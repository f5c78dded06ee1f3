// Tests StreamDecoder: a character split across tokens is held back until complete, ill-formed
// bytes come out as U+FFFD at once, and the deltas always add up to Decode (random sequences
// with a fixed, printed seed).
#include "coordinator/stream_decoder.h"

#include <cstdio>
#include <random>
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

Tokenizer Load(const std::vector<std::string>& merges = {}) {
  absl::StatusOr<Tokenizer> t = Tokenizer::FromJson(testing::TestTokenizerJson(merges));
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

// Feeds `ids` one at a time; returns every delta, then Finish() as the last element.
std::vector<std::string> Stream(StreamDecoder& decoder, const std::vector<int32_t>& ids) {
  std::vector<std::string> deltas;
  for (int32_t id : ids) {
    absl::StatusOr<std::string> delta = decoder.Push(id);
    EXPECT_TRUE(delta.ok()) << delta.status();
    deltas.push_back(delta.value_or("<error>"));
  }
  deltas.push_back(decoder.Finish());
  return deltas;
}

TEST(StreamDecoder, HoldsBackACharacterUntilItsLastByte) {
  const Tokenizer t = Load();  // no merges: every byte is its own token
  StreamDecoder decoder(&t);
  const std::vector<int32_t> ids = t.Encode("a你😀b");
  ASSERT_EQ(ids.size(), 1u + 3u + 4u + 1u);
  std::vector<size_t> pending;
  std::vector<std::string> deltas;
  for (int32_t id : ids) {
    deltas.push_back(decoder.Push(id).value_or("<error>"));
    pending.push_back(decoder.pending_bytes());
    EXPECT_TRUE(IsWellFormedUtf8(deltas.back()));
  }
  EXPECT_THAT(deltas, ElementsAre("a", "", "", "你", "", "", "", "😀", "b"));
  EXPECT_THAT(pending, ElementsAre(0, 1, 2, 0, 1, 2, 3, 0, 0));
  EXPECT_EQ(decoder.Finish(), "");
}

TEST(StreamDecoder, MergedTokensCanCompleteACharacter) {
  // "你" is E4 BD A0: with the merge "ä ½" the first two bytes are one token.
  const Tokenizer t = Load({"ä ½"});
  const std::vector<int32_t> ids = t.Encode("你你");
  ASSERT_EQ(ids.size(), 4u);
  StreamDecoder decoder(&t);
  EXPECT_THAT(Stream(decoder, ids), ElementsAre("", "你", "", "你", ""));
}

TEST(StreamDecoder, IllFormedBytesBecomeReplacementCharactersAtOnce) {
  const Tokenizer t = Load();
  const std::string fffd(kReplacementCharacter);
  StreamDecoder decoder(&t);
  // A stray continuation byte can never become well-formed; E4 followed by 'x' breaks off.
  EXPECT_THAT(Stream(decoder, t.Encode("\x80"
                                       "a\xe4"
                                       "x")),
              ElementsAre(fffd, "a", "", fffd + "x", ""));
  // A character cut off by the end of the stream: Finish gives one U+FFFD.
  EXPECT_THAT(Stream(decoder, t.Encode("z\xf0\x9f\x98")), ElementsAre("z", "", "", "", fffd));
  EXPECT_EQ(decoder.pending_bytes(), 0u);
}

TEST(StreamDecoder, SkipsSpecialTokensWhenAsked) {
  const Tokenizer t = Load();
  StreamDecoder decoder(&t, {.skip_special = true});
  const std::vector<int32_t> ids = t.Encode("<｜User｜>hi<｜end▁of▁sentence｜>");
  EXPECT_THAT(Stream(decoder, ids), ElementsAre("", "h", "i", "", ""));
  StreamDecoder verbatim(&t);
  EXPECT_THAT(Stream(verbatim, ids),
              ElementsAre(std::string(kUserToken), "h", "i", std::string(kEosToken), ""));
}

TEST(StreamDecoder, UnknownIdIsAnErrorAndChangesNothing) {
  const Tokenizer t = Load();
  StreamDecoder decoder(&t);
  const std::vector<int32_t> ids = t.Encode("你");
  EXPECT_EQ(decoder.Push(ids[0]).value_or("<error>"), "");
  EXPECT_EQ(decoder.Push(100000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoder.pending_bytes(), 1u);
  EXPECT_EQ(decoder.Push(ids[1]).value_or("<error>"), "");
  EXPECT_EQ(decoder.Push(ids[2]).value_or("<error>"), "你");
}

TEST(StreamDecoder, DeltasAlwaysAddUpToDecode) {
  const Tokenizer t = Load({"ä ½", "½ ł", "Ġ t", "ð Ł"});
  const uint32_t seed = 20250517;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> any_id(0, t.vocab_size() - 1);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<int32_t> ids(rng() % 12);
    for (int32_t& id : ids) id = any_id(rng);
    for (bool skip : {false, true}) {
      StreamDecoder decoder(&t, {.skip_special = skip});
      std::string joined;
      for (const std::string& delta : Stream(decoder, ids)) {
        ASSERT_TRUE(IsWellFormedUtf8(delta)) << "trial " << trial;
        joined += delta;
      }
      EXPECT_EQ(joined, t.Decode(ids, {.skip_special = skip}).value_or("<error>"))
          << "trial " << trial;
    }
  }
}

}  // namespace
}  // namespace mla::coordinator
