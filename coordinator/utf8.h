// UTF-8 scanning for the tokenizer: classify the bytes at a position (a whole character, a
// character cut short by the end of the input, or an ill-formed stretch), split a byte string
// into its finished part and an unfinished last character, and convert lossily.
//
// "Well-formed" is Unicode's definition (Table 3-7): no overlong forms, no surrogates, nothing
// above U+10FFFF. Lossy conversion replaces each maximal ill-formed subpart (Unicode §3.9,
// "substitution of maximal subparts": the longest run that starts like a valid character and
// then breaks off, or one stray byte) with one U+FFFD; this is what Rust's from_utf8_lossy, and
// so the Hugging Face decoders, do.
//
// Pure functions on caller-owned bytes; any thread.
#ifndef MLASERVE_COORDINATOR_UTF8_H_
#define MLASERVE_COORDINATOR_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace mla::coordinator {

// U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

struct Utf8Unit {
  enum Kind {
    kCharacter,  // `length` bytes (1-4) form one well-formed character
    kTruncated,  // `length` bytes (1-3) start a well-formed character, then the input ends
    kIllFormed,  // `length` bytes (>= 1) are a maximal ill-formed subpart
  };
  Kind kind;
  size_t length;
};

// What the bytes at text[pos] are. REQUIRES: pos < text.size().
Utf8Unit ScanUtf8(std::string_view text, size_t pos);

// True iff `text` is well-formed UTF-8.
bool IsWellFormedUtf8(std::string_view text);

// The length of `bytes` without a final truncated character: everything before it can be
// converted now, the rest (0 to 3 bytes) may still be completed by more bytes.
size_t FinishedPrefixLength(std::string_view bytes);

// `bytes` with each maximal ill-formed subpart (and a truncated last character) replaced by
// U+FFFD. Well-formed input is returned unchanged.
std::string LossyUtf8(std::string_view bytes);

// Appends the UTF-8 encoding of `code_point`. REQUIRES: code_point <= 0x10FFFF.
void AppendUtf8(char32_t code_point, std::string* out);

// The code point of the well-formed character at text[pos] of `length` bytes (from ScanUtf8).
char32_t DecodeUtf8(std::string_view text, size_t pos, size_t length);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_UTF8_H_
