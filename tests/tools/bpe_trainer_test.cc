// Tests the BPE trainer: the tiny preset's tokenizer has exactly vocab_size tokens (no
// placeholders) with bos 0 / eos 1 and loads; training is deterministic and learns the obvious
// first merge; big vocabularies are padded with placeholders; WriteSyntheticCheckpoint writes
// a tokenizer that matches config.json.
#include "tools/bpe_trainer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "coordinator/chat_template.h"
#include "coordinator/special_tokens.h"
#include "coordinator/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tools/bpe_corpus.h"
#include "tools/synthetic_checkpoint.h"

namespace mla::tools {
namespace {

namespace fs = std::filesystem;
using coordinator::Tokenizer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("bpe_trainer_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(BpeTrainer, TinyVocabularyIsExactlyFullAndLoads) {
  const std::string dir = FreshDir("tiny");
  ASSERT_TRUE(WriteTokenizerFiles({.vocab_size = 1024}, dir).ok());
  absl::StatusOr<TrainedBpe> bpe = TrainBpe({.vocab_size = 1024});
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  EXPECT_EQ(bpe->special.size(), 4u);
  EXPECT_EQ(bpe->learned.size(), 1024u - 4 - 256);
  EXPECT_EQ(bpe->num_placeholders, 0);
  std::printf("corpus %zu bytes: %zu merges make %zu tokens\n", BuiltinBpeCorpus().size(),
              bpe->merges.size(), bpe->learned.size());

  const auto doc = nlohmann::json::parse(ReadAll(dir + "/tokenizer.json"), nullptr, false);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(doc["model"]["vocab"].size(), 1024u);
  EXPECT_EQ(doc["model"]["merges"].size(), bpe->merges.size());
  EXPECT_EQ(doc["added_tokens"].size(), 4u);
  EXPECT_EQ(doc["added_tokens"][0]["content"], std::string(coordinator::kBosToken));
  EXPECT_EQ(doc["added_tokens"][1]["content"], std::string(coordinator::kEosToken));
  EXPECT_EQ(doc["model"]["vocab"]["Ġ"], 4 + ' ');

  absl::StatusOr<Tokenizer> t = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), 1024);
  EXPECT_EQ(t->model().num_tokens(), 1024u);
  EXPECT_EQ(t->bos_id(), 0);
  EXPECT_EQ(t->eos_id(), 1);
  EXPECT_EQ(t->TokenId(coordinator::kUserToken), 2);
  EXPECT_EQ(t->TokenId(coordinator::kAssistantToken), 3);
  EXPECT_EQ(t->chat_template(), coordinator::DeepSeekV3ChatTemplateJinja());

  const std::string corpus(BuiltinBpeCorpus());
  const std::vector<int32_t> ids = t->Encode(corpus);
  EXPECT_EQ(t->Decode(ids).value_or(""), corpus);
  std::printf("corpus encodes to %zu tokens (%.2f bytes/token)\n", ids.size(),
              static_cast<double>(corpus.size()) / ids.size());
  EXPECT_LT(ids.size() * 2, corpus.size());
}

TEST(BpeTrainer, IsDeterministicAndMergesTheMostFrequentPairFirst) {
  absl::StatusOr<TrainedBpe> a = TrainBpe({.vocab_size = 1024});
  absl::StatusOr<TrainedBpe> b = TrainBpe({.vocab_size = 1024});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(TokenizerJson(*a), TokenizerJson(*b));
  // Pieces "ab", " ab", " ab", " cd": a+b occurs 3 times, Ġ+a twice.
  absl::StatusOr<TrainedBpe> small = TrainBpe({.vocab_size = 262, .corpus = "ab ab ab cd"});
  ASSERT_TRUE(small.ok());
  EXPECT_THAT(small->learned, ElementsAre("ab", " ab"));
  ASSERT_EQ(small->merges.size(), 2u);
  EXPECT_EQ(small->merges[0], std::make_pair(std::string("a"), std::string("b")));
}

TEST(BpeTrainer, PadsWithPlaceholdersWhenTheCorpusRunsOut) {
  absl::StatusOr<TrainedBpe> bpe = TrainBpe({.vocab_size = 300, .corpus = "abc abc"});
  ASSERT_TRUE(bpe.ok());
  EXPECT_GT(bpe->num_placeholders, 0);
  EXPECT_EQ(4 + 256 + static_cast<int64_t>(bpe->learned.size()) + bpe->num_placeholders, 300);
  absl::StatusOr<Tokenizer> t = Tokenizer::FromJson(TokenizerJson(*bpe));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), 300);
  for (int32_t id = 0; id < 300; ++id) EXPECT_TRUE(t->Decode({{id}}).ok()) << id;
  EXPECT_TRUE(t->IsSpecial(299));
  EXPECT_EQ(t->Decode({{299}}).value_or(""), std::string(coordinator::kPlaceholderPrefix) +
                                                 std::to_string(bpe->num_placeholders - 1) +
                                                 std::string(coordinator::kPlaceholderSuffix));
  EXPECT_EQ(t->Encode("abc abc"), t->Encode("abc abc", {.parse_special = false}));
}

TEST(BpeTrainer, RejectsBadOptions) {
  EXPECT_THAT(std::string(TrainBpe({.vocab_size = 259}).status().message()),
              HasSubstr("vocab_size"));
  EXPECT_THAT(std::string(TrainBpe({.corpus = "bad \xff"}).status().message()), HasSubstr("UTF-8"));
}

TEST(BpeTrainer, SyntheticCheckpointHasAMatchingTokenizer) {
  const std::string dir = FreshDir("checkpoint");
  SyntheticOptions options;
  options.preset = "tiny";
  options.num_layers = 2;
  ASSERT_TRUE(WriteSyntheticCheckpoint(options, dir).ok());
  const auto config = nlohmann::json::parse(ReadAll(dir + "/config.json"), nullptr, false);
  absl::StatusOr<Tokenizer> t = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), config["vocab_size"].get<int>());
  EXPECT_EQ(t->bos_id(), config["bos_token_id"].get<int>());
  EXPECT_EQ(t->eos_id(), config["eos_token_id"].get<int>());
  const auto tokenizer_config =
      nlohmann::json::parse(ReadAll(dir + "/tokenizer_config.json"), nullptr, false);
  EXPECT_EQ(tokenizer_config["model_max_length"], config["max_position_embeddings"]);
}

}  // namespace
}  // namespace mla::tools
