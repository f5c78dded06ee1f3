// Tests the byte-level alphabet: a bijection, the GPT-2 spellings of space and newline, and
// rejection of characters outside it.
#include "coordinator/byte_level.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

TEST(ByteLevel, IsABijectionOntoPrintableCharacters) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = ByteLevelChar(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << b;
    EXPECT_GT(c, 0x20u) << b;
    EXPECT_LT(c, 0x144u) << b;
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelDecode(ByteLevelEncode(all)), all);
}

TEST(ByteLevel, SpellsLikeGpt2) {
  EXPECT_EQ(ByteLevelEncode(" hello\n"), "ĠhelloĊ");
  EXPECT_EQ(ByteLevelEncode("\t"), "ĉ");
  EXPECT_EQ(ByteLevelEncode("é"), "Ã©");  // C3 A9
  // The 68 moved bytes in order: 0x00-0x20 to U+0100-U+0120, 0x7F to U+0121, 0x80-0xA0 to
  // U+0122-U+0142, 0xAD to U+0143.
  EXPECT_EQ(ByteLevelEncode("\x7f\xa0\xad"), "ġłŃ");
  EXPECT_EQ(ByteLevelDecode("Ġworld"), " world");
}

TEST(ByteLevel, RejectsTextOutsideTheAlphabet) {
  EXPECT_FALSE(ByteLevelDecode("<｜User｜>").has_value());
  EXPECT_FALSE(ByteLevelDecode("\xff").has_value());
  EXPECT_EQ(ByteLevelDecode(""), "");
}

}  // namespace
}  // namespace mla::coordinator
