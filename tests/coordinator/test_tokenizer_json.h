// Test helper: a small hand-built byte-level BPE tokenizer.json for the tokenizer tests.
//
// Ids: 0 <｜begin▁of▁sentence｜>, 1 <｜end▁of▁sentence｜>, 2 <｜User｜>, 3 <｜Assistant｜> (special
// added tokens, also in the vocab), 4..259 the byte tokens in byte order, then the result of each
// merge not yet in the vocab, in merge order. The pre-tokenizer is DeepSeek-V3's, the decoder
// ByteLevel. Merges are given spelled in the byte-level alphabet ("a b", "Ġ t").
#ifndef MLASERVE_TESTS_COORDINATOR_TEST_TOKENIZER_JSON_H_
#define MLASERVE_TESTS_COORDINATOR_TEST_TOKENIZER_JSON_H_

#include <string>
#include <vector>

#include "coordinator/byte_level.h"
#include "coordinator/pretokenizer.h"
#include "coordinator/special_tokens.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator::testing {

inline nlohmann::ordered_json TestTokenizerDoc(const std::vector<std::string>& merges) {
  using nlohmann::ordered_json;
  ordered_json vocab = ordered_json::object();
  ordered_json added = ordered_json::array();
  int id = 0;
  for (std::string_view special : {kBosToken, kEosToken, kUserToken, kAssistantToken}) {
    added.push_back({{"id", id},
                     {"content", std::string(special)},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
    vocab[std::string(special)] = id++;
  }
  for (int b = 0; b < 256; ++b) {
    vocab[ByteLevelEncode(std::string(1, static_cast<char>(b)))] = id++;
  }
  for (const std::string& merge : merges) {
    const size_t space = merge.find(' ');
    const std::string merged = merge.substr(0, space) + merge.substr(space + 1);
    if (!vocab.contains(merged)) vocab[merged] = id++;
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", PretokenizerJson(DeepSeekV3SplitPatterns())},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
  };
}

inline std::string TestTokenizerJson(const std::vector<std::string>& merges = {}) {
  return TestTokenizerDoc(merges).dump();
}

}  // namespace mla::coordinator::testing

#endif  // MLASERVE_TESTS_COORDINATOR_TEST_TOKENIZER_JSON_H_
