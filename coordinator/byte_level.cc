// The byte-level alphabet's two tables, built at compile time (see byte_level.h).
#include "coordinator/byte_level.h"

#include <array>

#include "coordinator/utf8.h"

namespace mla::coordinator {
namespace {

constexpr bool PrintsAsItself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

constexpr std::array<char32_t, 256> MakeByteToChar() {
  std::array<char32_t, 256> table{};
  char32_t next_free = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    table[byte] = PrintsAsItself(byte) ? static_cast<char32_t>(byte) : next_free++;
  }
  return table;
}

constexpr std::array<char32_t, 256> kByteToChar = MakeByteToChar();
constexpr char32_t kAlphabetEnd = 0x100 + 68;  // one past the largest character used

constexpr std::array<int16_t, kAlphabetEnd> MakeCharToByte() {
  std::array<int16_t, kAlphabetEnd> table{};
  for (auto& entry : table) entry = -1;
  for (int byte = 0; byte < 256; ++byte) table[kByteToChar[byte]] = static_cast<int16_t>(byte);
  return table;
}

constexpr std::array<int16_t, kAlphabetEnd> kCharToByte = MakeCharToByte();
static_assert(kByteToChar[' '] == 0x120 && kByteToChar['\n'] == 0x10A);
static_assert(kByteToChar[0xAD] == kAlphabetEnd - 1);

}  // namespace

char32_t ByteLevelChar(uint8_t byte) { return kByteToChar[byte]; }

std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) AppendUtf8(kByteToChar[static_cast<uint8_t>(byte)], &out);
  return out;
}

std::optional<std::string> ByteLevelDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit unit = ScanUtf8(text, pos);
    if (unit.kind != Utf8Unit::kCharacter) return std::nullopt;
    const char32_t cp = DecodeUtf8(text, pos, unit.length);
    if (cp >= kAlphabetEnd || kCharToByte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(kCharToByte[cp]));
    pos += unit.length;
  }
  return out;
}

}  // namespace mla::coordinator
