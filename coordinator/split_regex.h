// SplitRegex: one Hugging Face "Split" pre-tokenizer step with behavior "Isolated" (invert
// false), run on RE2. Every match of the pattern, and every stretch of text between matches,
// becomes a piece of its own, in order; empty matches produce nothing.
//
// tokenizer.json patterns are written for Oniguruma. RE2 differs in two ways that matter here,
// and Create bridges both:
//  1. \s \S \d \D \w \W are ASCII-only in RE2 but Unicode in Oniguruma. They are rewritten to
//     Unicode sets: \s = White_Space = [\x{9}-\x{D}\x{85}\p{Z}], \d = \p{Nd},
//     \w = [\p{L}\p{M}\p{Nd}\p{Pc}], upper case = complement (not allowed inside [...]).
//  2. RE2 has no lookaround. The one lookahead of GPT-style patterns, a top-level alternative
//     \s+(?!\S) followed by the alternative \s+ (or last), is emulated: the pair is replaced by a
//     capturing alternative (\s+), and when that group produced a match that stops before a
//     non-space character and spans two or more characters, the match is cut back by its last
//     character, which then begins the next match (" world" in "a   world"). That is exactly
//     what the backtracking engine does: \s+ can give back characters until (?!\S) holds, which
//     is possible only if at least one space is left; if not (a single space before a letter),
//     the \s+ alternative takes the one space (without a trailing \s+ alternative, the space
//     stays unmatched). Start positions agree because both forms match at exactly the same
//     places. RE2 is leftmost-first like Oniguruma, so alternation order is kept.
// Other lookaround, \S-style classes inside [...], and syntax RE2 lacks (possessive
// quantifiers, backreferences) make Create fail with InvalidArgument.
//
// Immutable after Create; Split may run concurrently on any threads.
#ifndef MLASERVE_COORDINATOR_SPLIT_REGEX_H_
#define MLASERVE_COORDINATOR_SPLIT_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace mla::coordinator {

// A pattern rewritten for RE2 (exposed for tests and error messages).
struct Re2Pattern {
  std::string pattern;          // RE2 syntax
  bool emulates_space = false;  // has the (\s+) group standing for \s+(?!\S)
  bool space_fallback = false;  // the original had \s+ after \s+(?!\S)
};

// Rewrites an Oniguruma pattern for RE2 as described above; InvalidArgument for what cannot be.
absl::StatusOr<Re2Pattern> TranslateOnigurumaPattern(std::string_view pattern);

class SplitRegex {
 public:
  // InvalidArgument (with RE2's message) when the pattern cannot be translated or compiled.
  static absl::StatusOr<SplitRegex> Create(std::string_view pattern);
  // A pattern matched literally (HF's {"String": ...} form).
  static absl::StatusOr<SplitRegex> CreateLiteral(std::string_view text);

  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;
  ~SplitRegex();

  // Appends the pieces of `text` to `out`; they are views into `text` and cover it exactly.
  // REQUIRES: text is well-formed UTF-8.
  void Split(std::string_view text, std::vector<std::string_view>* out) const;

  const std::string& pattern() const { return pattern_; }  // as given

 private:
  SplitRegex(std::string pattern, Re2Pattern translated, std::unique_ptr<re2::RE2> re);

  std::string pattern_;
  Re2Pattern translated_;
  std::unique_ptr<re2::RE2> re_;
  int space_group_ = 0;  // index of the (\s+) group, 0 if none
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_SPLIT_REGEX_H_
