// AddedTokens: a tokenizer's added vocabulary (tokenizer.json "added_tokens"): strings found in
// the raw text before pre-tokenization and encoded as one id each, never split or merged.
// DeepSeek-V3's are all special (bos, eos, the chat markers, reserved placeholders).
//
// Matching: at each position, the longest added token that starts there; the text is scanned
// left to right, so the leftmost match wins. Tokens marked special are matched only when the
// caller asks (Split's match_special); otherwise their text is ordinary text. lstrip / rstrip
// tokens also take the ASCII whitespace (" \t\n\r\f\v") on their left / right.
//
// Immutable after Create; any thread.
#ifndef MLASERVE_COORDINATOR_ADDED_TOKENS_H_
#define MLASERVE_COORDINATOR_ADDED_TOKENS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace mla::coordinator {

struct AddedToken {
  int32_t id = -1;
  std::string content;  // the exact text, non-empty
  bool special = false;
  bool lstrip = false;  // absorbs whitespace to its left
  bool rstrip = false;  // absorbs whitespace to its right
};

class AddedTokens {
 public:
  // InvalidArgument for an empty content, a negative id, or a content or id given twice.
  static absl::StatusOr<AddedTokens> Create(std::vector<AddedToken> tokens);

  struct Segment {
    std::string_view text;  // a view into Split's input
    int32_t id = -1;        // >= 0: the text is (or, stripping, surrounds) this added token
  };
  // `text` cut into ordinary stretches and added tokens, in order.
  std::vector<Segment> Split(std::string_view text, bool match_special) const;

  // The token with this id or content; nullptr if none.
  const AddedToken* FindId(int32_t id) const;
  const AddedToken* FindContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // The longest token matching text at `pos` (special ones only if match_special); -1 if none.
  int Match(std::string_view text, size_t pos, bool match_special) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<std::string, int> by_content_;  // index into tokens_
  absl::flat_hash_map<int32_t, int> by_id_;           // index into tokens_
  // For each first byte, the distinct content lengths of tokens starting with it, longest first.
  std::vector<std::vector<size_t>> lengths_by_first_byte_;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_ADDED_TOKENS_H_
