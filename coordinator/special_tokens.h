// The texts of DeepSeek-V3's special tokens that the server and the tools name. The bars are
// U+FF5C FULLWIDTH VERTICAL LINE and the word joiners U+2581 LOWER ONE EIGHTH BLOCK, as in the
// released tokenizer.json. Header-only constants.
#ifndef MLASERVE_COORDINATOR_SPECIAL_TOKENS_H_
#define MLASERVE_COORDINATOR_SPECIAL_TOKENS_H_

#include <string_view>

namespace mla::coordinator {

inline constexpr std::string_view kBosToken = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEosToken = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kUserToken = "<｜User｜>";
inline constexpr std::string_view kAssistantToken = "<｜Assistant｜>";

// Reserved token N (the released vocabulary pads with these) is kPlaceholderPrefix + N +
// kPlaceholderSuffix.
inline constexpr std::string_view kPlaceholderPrefix = "<｜place▁holder▁no▁";
inline constexpr std::string_view kPlaceholderSuffix = "｜>";

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_SPECIAL_TOKENS_H_
