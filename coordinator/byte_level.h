// The byte-level alphabet of GPT-2-style BPE: a fixed bijection between the 256 byte values and
// 256 printable Unicode characters, so that a token, whatever bytes it stands for (a piece of a
// multi-byte character, a control byte), is spelled as a visible string in tokenizer.json.
//
// The table: a byte that is a printable Latin-1 character ('!'..'~', '¡'..'¬', '®'..'ÿ', 188
// bytes) maps to the code point of the same value; the other 68 bytes (0x00-0x20, 0x7F-0xA0,
// 0xAD) map, in increasing byte order, to U+0100, U+0101, ..., U+0143. So space (0x20) is 'Ġ'
// (U+0120) and newline (0x0A) is 'Ċ' (U+010A).
//
// Pure functions over constant tables; any thread.
#ifndef MLASERVE_COORDINATOR_BYTE_LEVEL_H_
#define MLASERVE_COORDINATOR_BYTE_LEVEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mla::coordinator {

// The character standing for `byte`.
char32_t ByteLevelChar(uint8_t byte);

// `bytes` spelled in the alphabet: one character (UTF-8 encoded) per byte.
std::string ByteLevelEncode(std::string_view bytes);

// The bytes a token spelled in the alphabet stands for; nullopt if `text` is not well-formed
// UTF-8 or has a character outside the alphabet.
std::optional<std::string> ByteLevelDecode(std::string_view text);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_BYTE_LEVEL_H_
