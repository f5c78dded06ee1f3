// Pretokenizer: cuts text into the pieces that BPE then encodes one by one (a tokenizer.json's
// "pre_tokenizer").
//
// Supported forms: null; a "Split" (pattern {"Regex"} or {"String"}, behavior "Isolated", invert
// false); a "ByteLevel" (add_prefix_space false; use_regex true adds GPT-2's split pattern, false
// adds nothing, since the byte mapping itself is the BPE model's business); and a "Sequence" of
// these. A Sequence applies each step to every piece the steps before it produced, as Hugging
// Face does, so a later pattern never sees across an earlier cut. Anything else: InvalidArgument
// naming it.
//
// Ill-formed UTF-8: before the first step, each maximal ill-formed subpart (utf8.h) is cut out
// as a piece of its own, and regexes run only on well-formed stretches. (Hugging Face only ever
// sees well-formed strings; this extends it to arbitrary bytes, which BPE then encodes as bytes.)
//
// Immutable after creation; Split may run concurrently on any threads.
#ifndef MLASERVE_COORDINATOR_PRETOKENIZER_H_
#define MLASERVE_COORDINATOR_PRETOKENIZER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/split_regex.h"
#include "nlohmann/json_fwd.hpp"

namespace mla::coordinator {

// DeepSeek-V3's three Split patterns, in order: digits in runs of at most three (\p{N}{1,3});
// runs of CJK ideographs (U+4E00-U+9FA5), hiragana and katakana; and a GPT-style pattern for
// letters, punctuation, symbols, newlines and spaces.
std::vector<std::string> DeepSeekV3SplitPatterns();

// The "pre_tokenizer" object: a Sequence of Isolated Splits on `patterns`, then ByteLevel with
// use_regex false.
nlohmann::ordered_json PretokenizerJson(const std::vector<std::string>& patterns);

class Pretokenizer {
 public:
  // From a tokenizer.json "pre_tokenizer" value (null allowed: no cutting).
  static absl::StatusOr<Pretokenizer> FromJson(const nlohmann::json& pre_tokenizer);
  // Isolated Splits on `patterns`, in order.
  static absl::StatusOr<Pretokenizer> FromPatterns(const std::vector<std::string>& patterns);

  // The pieces of `text`, in order; views into `text` that cover it exactly.
  std::vector<std::string_view> Split(std::string_view text) const;

  // Whether the configuration had a ByteLevel step (a byte-level BPE tokenizer must).
  bool has_byte_level() const { return has_byte_level_; }
  int num_steps() const { return static_cast<int>(steps_.size()); }

 private:
  absl::Status Add(const nlohmann::json& step, const std::string& where);

  std::vector<SplitRegex> steps_;
  bool has_byte_level_ = false;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_PRETOKENIZER_H_
