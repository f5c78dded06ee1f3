// UTF-8 scanning by the byte ranges of Unicode Table 3-7 (see utf8.h).
#include "coordinator/utf8.h"

#include <cstdint>

namespace mla::coordinator {
namespace {

struct Range {
  uint8_t lo, hi;
};

constexpr Range kTail = {0x80, 0xBF};

// The number of bytes of the character a lead byte starts (0: not a lead byte) and the allowed
// range of its second byte; later bytes are always 80..BF.
int LeadLength(uint8_t lead, Range* second) {
  *second = kTail;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead == 0xE0) *second = {0xA0, 0xBF};
  if (lead == 0xED) *second = {0x80, 0x9F};
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead == 0xF0) *second = {0x90, 0xBF};
  if (lead == 0xF4) *second = {0x80, 0x8F};
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

}  // namespace

Utf8Unit ScanUtf8(std::string_view text, size_t pos) {
  Range range;
  const size_t need = LeadLength(static_cast<uint8_t>(text[pos]), &range);
  if (need == 0) return {Utf8Unit::kIllFormed, 1};
  size_t have = 1;
  while (have < need) {
    if (pos + have == text.size()) return {Utf8Unit::kTruncated, have};
    const auto byte = static_cast<uint8_t>(text[pos + have]);
    if (byte < range.lo || byte > range.hi) return {Utf8Unit::kIllFormed, have};
    range = kTail;
    ++have;
  }
  return {Utf8Unit::kCharacter, need};
}

bool IsWellFormedUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit unit = ScanUtf8(text, pos);
    if (unit.kind != Utf8Unit::kCharacter) return false;
    pos += unit.length;
  }
  return true;
}

size_t FinishedPrefixLength(std::string_view bytes) {
  // A truncated character is at most 3 bytes long, so only the tail needs a look; but the scan
  // must start on a unit boundary, which only a scan from the start (or a lead byte) knows.
  size_t pos = bytes.size() > 3 ? bytes.size() - 3 : 0;
  while (pos > 0 && (static_cast<uint8_t>(bytes[pos]) & 0xC0) == 0x80) --pos;
  while (pos < bytes.size()) {
    const Utf8Unit unit = ScanUtf8(bytes, pos);
    if (unit.kind == Utf8Unit::kTruncated) return pos;
    pos += unit.length;
  }
  return bytes.size();
}

std::string LossyUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    const Utf8Unit unit = ScanUtf8(bytes, pos);
    if (unit.kind == Utf8Unit::kCharacter) {
      out.append(bytes.substr(pos, unit.length));
    } else {
      out.append(kReplacementCharacter);
    }
    pos += unit.length;
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t DecodeUtf8(std::string_view text, size_t pos, size_t length) {
  static constexpr uint8_t kLeadMask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = static_cast<uint8_t>(text[pos]) & kLeadMask[length];
  for (size_t i = 1; i < length; ++i) {
    cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  }
  return cp;
}

}  // namespace mla::coordinator
