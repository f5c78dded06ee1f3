// BPE training on a small corpus and the Hugging Face tokenizer files (see bpe_trainer.h).
#include "tools/bpe_trainer.h"

#include <fstream>
#include <map>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "tools/text_file.h"
#include "coordinator/byte_level.h"
#include "coordinator/chat_template.h"
#include "coordinator/pretokenizer.h"
#include "coordinator/special_tokens.h"
#include "coordinator/utf8.h"
#include "nlohmann/json.hpp"
#include "tools/bpe_corpus.h"
#include "worker/status_macros.h"

namespace mla::tools {
namespace {

namespace coord = mla::coordinator;
using ordered_json = nlohmann::ordered_json;

struct Word {
  std::vector<int32_t> symbols;  // token ids
  int64_t count = 0;             // occurrences in the corpus
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
}

// Replaces each occurrence of (left, right) in `symbols`, scanning left to right, by `merged`.
void MergePair(int32_t left, int32_t right, int32_t merged, std::vector<int32_t>* symbols) {
  std::vector<int32_t>& s = *symbols;
  size_t out = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
      s[out++] = merged;
      ++i;
    } else {
      s[out++] = s[i];
    }
  }
  s.resize(out);
}

std::string Placeholder(int64_t n) {
  return std::string(coord::kPlaceholderPrefix) + std::to_string(n) +
         std::string(coord::kPlaceholderSuffix);
}

ordered_json AddedTokenJson(int64_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// Appends a member without ordered_json's linear-time key lookup (its object is a vector of
// pairs); REQUIRES: `key` is not yet a member.
void AppendMember(ordered_json* object, std::string key, ordered_json value) {
  object->get_ref<ordered_json::object_t&>().emplace_back(std::move(key), std::move(value));
}

}  // namespace

absl::StatusOr<TrainedBpe> TrainBpe(const BpeTrainerOptions& options) {
  TrainedBpe bpe;
  for (std::string_view token :
       {coord::kBosToken, coord::kEosToken, coord::kUserToken, coord::kAssistantToken}) {
    bpe.special.emplace_back(token);
  }
  const int64_t first_learned = bpe.first_byte_id() + 256;
  if (options.vocab_size < first_learned) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size: ", options.vocab_size, " is below ",
                                                   first_learned, " (special tokens + 256 bytes)"));
  }
  bpe.vocab_size = options.vocab_size;
  const std::string_view corpus = options.corpus.empty() ? BuiltinBpeCorpus() : options.corpus;
  if (!coord::IsWellFormedUtf8(corpus)) {
    return absl::InvalidArgumentError("corpus: not well-formed UTF-8");
  }
  MLA_ASSIGN_OR_RETURN(const coord::Pretokenizer pretokenizer,
                       coord::Pretokenizer::FromPatterns(coord::DeepSeekV3SplitPatterns()));
  std::map<std::string_view, int64_t> counts;  // ordered, so training is deterministic
  for (std::string_view piece : pretokenizer.Split(corpus)) ++counts[piece];

  std::vector<std::string> bytes_of(first_learned);  // by id; empty for special tokens
  absl::flat_hash_map<std::string, int32_t> id_of;   // bytes -> id of byte and learned tokens
  for (int b = 0; b < 256; ++b) {
    bytes_of[bpe.first_byte_id() + b] = std::string(1, static_cast<char>(b));
    id_of[bytes_of[bpe.first_byte_id() + b]] = static_cast<int32_t>(bpe.first_byte_id() + b);
  }
  std::vector<Word> words;
  for (const auto& [piece, count] : counts) {
    Word word{{}, count};
    for (char c : piece) word.symbols.push_back(id_of.at(std::string(1, c)));
    words.push_back(std::move(word));
  }

  int64_t next_id = first_learned;
  while (next_id < bpe.vocab_size) {
    absl::flat_hash_map<uint64_t, int64_t> pair_counts;
    for (const Word& word : words) {
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        pair_counts[PairKey(word.symbols[i], word.symbols[i + 1])] += word.count;
      }
    }
    if (pair_counts.empty()) break;
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts) {
      if (count > best_count || (count == best_count && key < best)) {
        best = key;
        best_count = count;
      }
    }
    const auto left = static_cast<int32_t>(best >> 32);
    const auto right = static_cast<int32_t>(best & 0xffffffffu);
    std::string merged_bytes = bytes_of[left] + bytes_of[right];
    auto [it, is_new] = id_of.emplace(merged_bytes, static_cast<int32_t>(next_id));
    if (is_new) {
      bytes_of.push_back(merged_bytes);
      bpe.learned.push_back(std::move(merged_bytes));
      ++next_id;
    }
    bpe.merges.emplace_back(bytes_of[left], bytes_of[right]);
    for (Word& word : words) MergePair(left, right, it->second, &word.symbols);
  }
  bpe.num_placeholders = bpe.vocab_size - next_id;
  return bpe;
}

std::string TokenizerJson(const TrainedBpe& bpe) {
  ordered_json vocab = ordered_json::object();
  ordered_json added = ordered_json::array();
  int64_t id = 0;
  for (const std::string& content : bpe.special) {
    added.push_back(AddedTokenJson(id, content));
    AppendMember(&vocab, content, id++);
  }
  for (int b = 0; b < 256; ++b) {
    AppendMember(&vocab, coord::ByteLevelEncode(std::string(1, static_cast<char>(b))), id++);
  }
  for (const std::string& bytes : bpe.learned) {
    AppendMember(&vocab, coord::ByteLevelEncode(bytes), id++);
  }
  for (int64_t n = 0; n < bpe.num_placeholders; ++n) {
    added.push_back(AddedTokenJson(id, Placeholder(n)));
    AppendMember(&vocab, Placeholder(n), id++);
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : bpe.merges) {
    merges.push_back(coord::ByteLevelEncode(left) + " " + coord::ByteLevelEncode(right));
  }
  const std::string& bos = bpe.special[0];
  const ordered_json bos_piece = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  const ordered_json post_processor = {
      {"type", "TemplateProcessing"},
      {"single", {bos_piece, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {bos_piece,
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}},
  };
  const ordered_json doc = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", std::move(added)},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
      {"pre_tokenizer", coord::PretokenizerJson(coord::DeepSeekV3SplitPatterns())},
      {"post_processor", post_processor},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", std::move(vocab)},
        {"merges", std::move(merges)}}},
  };
  return doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

std::string TokenizerConfigJson(const TrainedBpe& bpe, int64_t model_max_length) {
  const ordered_json config = {
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"bos_token", bpe.special[0]},
      {"eos_token", bpe.special[1]},
      {"pad_token", bpe.special[1]},
      {"unk_token", nullptr},
      {"clean_up_tokenization_spaces", false},
      {"model_max_length", model_max_length},
      {"tokenizer_class", "LlamaTokenizerFast"},
      {"chat_template", std::string(coord::DeepSeekV3ChatTemplateJinja())},
  };
  return config.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

absl::Status WriteTokenizerFiles(const BpeTrainerOptions& options, const std::string& dir) {
  MLA_ASSIGN_OR_RETURN(const TrainedBpe bpe, TrainBpe(options));
  MLA_RETURN_IF_ERROR(WriteTextFile(dir + "/tokenizer.json", TokenizerJson(bpe)));
  return WriteTextFile(dir + "/tokenizer_config.json",
                   TokenizerConfigJson(bpe, options.model_max_length));
}

}  // namespace mla::tools
