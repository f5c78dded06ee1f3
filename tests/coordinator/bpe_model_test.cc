// Tests BpeModel directly: merges by rank with the heap, stale candidates, ignore_merges, and
// the checks made at creation.
#include "coordinator/bpe_model.h"

#include <string>
#include <vector>

#include "coordinator/byte_level.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::flat_hash_map<std::string, int32_t> ByteVocab(const std::vector<std::string>& extra) {
  absl::flat_hash_map<std::string, int32_t> vocab;
  for (int b = 0; b < 256; ++b) vocab[ByteLevelEncode(std::string(1, static_cast<char>(b)))] = b;
  int32_t id = 256;
  for (const std::string& token : extra) vocab[token] = id++;
  return vocab;
}

std::vector<std::string> EncodeTexts(const BpeModel& model, std::string_view word) {
  std::vector<int32_t> ids;
  model.EncodeWord(word, &ids);
  std::vector<std::string> texts;
  for (int32_t id : ids) texts.push_back(*model.TokenText(id));
  return texts;
}

TEST(BpeModel, MergesLowestRankFirstAndRequeuesNeighbours) {
  // "abab": a+b (rank 1) twice, then ab+ab (rank 0) though it ranks first: it only exists
  // after the rank-1 merges.
  absl::StatusOr<BpeModel> model = BpeModel::Create(ByteVocab({"ab", "abab", "ba"}),
                                                    {{"ab", "ab"}, {"a", "b"}, {"b", "a"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(EncodeTexts(*model, "abab"), ElementsAre("abab"));
  // "aba": a+b (rank 1) beats b+a (rank 2); then nothing joins ab and a.
  EXPECT_THAT(EncodeTexts(*model, "aba"), ElementsAre("ab", "a"));
  EXPECT_THAT(EncodeTexts(*model, ""), ElementsAre());
  EXPECT_EQ(model->num_merges(), 3u);
  EXPECT_EQ(model->max_id(), 258);
}

TEST(BpeModel, IgnoreMergesTakesWholeTokens) {
  // "abc" is a token, but no merge sequence reaches it.
  const auto vocab = ByteVocab({"ab", "abc"});
  const std::vector<std::pair<std::string, std::string>> merges = {{"a", "b"}};
  absl::StatusOr<BpeModel> plain = BpeModel::Create(vocab, merges, false);
  absl::StatusOr<BpeModel> ignoring = BpeModel::Create(vocab, merges, true);
  ASSERT_TRUE(plain.ok() && ignoring.ok());
  EXPECT_THAT(EncodeTexts(*plain, "abc"), ElementsAre("ab", "c"));
  EXPECT_THAT(EncodeTexts(*ignoring, "abc"), ElementsAre("abc"));
  EXPECT_THAT(EncodeTexts(*ignoring, "abcd"), ElementsAre("ab", "c", "d"));
}

TEST(BpeModel, TokenBytesMapTheAlphabetBack) {
  absl::StatusOr<BpeModel> model = BpeModel::Create(ByteVocab({"Ġhi", "<special>"}), {}, false);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(*model->TokenBytes(model->TokenId("Ġhi")), " hi");
  EXPECT_EQ(*model->TokenBytes(model->TokenId("<special>")), "<special>");
  EXPECT_EQ(model->TokenBytes(9999), nullptr);
  EXPECT_EQ(model->TokenId("nope"), -1);
}

TEST(BpeModel, CreationChecks) {
  auto vocab = ByteVocab({});
  vocab.erase("a");
  EXPECT_THAT(std::string(BpeModel::Create(vocab, {}, false).status().message()),
              HasSubstr("no token for byte 97"));
  EXPECT_THAT(std::string(BpeModel::Create(ByteVocab({}), {{"a", "b"}}, false).status().message()),
              HasSubstr("model.merges[0] \"a b\""));
  EXPECT_THAT(
      std::string(
          BpeModel::Create(ByteVocab({"ab"}), {{"a", "b"}, {"a", "b"}}, false).status().message()),
      HasSubstr("duplicate"));
  auto twice = ByteVocab({"x2"});
  twice["x2"] = 5;
  EXPECT_THAT(std::string(BpeModel::Create(twice, {}, false).status().message()),
              HasSubstr("used twice"));
}

}  // namespace
}  // namespace mla::coordinator
