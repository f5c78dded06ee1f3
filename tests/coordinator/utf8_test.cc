// Tests the UTF-8 scanner against Unicode's Table 3-7 and the maximal-subpart rule.
#include "coordinator/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

TEST(Utf8, ClassifiesUnits) {
  struct Case {
    std::string bytes;
    Utf8Unit::Kind kind;
    size_t length;
  };
  const Case cases[] = {
      {"a", Utf8Unit::kCharacter, 1},
      {"\xc3\xa9", Utf8Unit::kCharacter, 2},
      {"\xe4\xbd\xa0", Utf8Unit::kCharacter, 3},
      {"\xf0\x9f\x98\x80", Utf8Unit::kCharacter, 4},
      {"\xf4\x8f\xbf\xbf", Utf8Unit::kCharacter, 4},  // U+10FFFF
      {"\xe4\xbd", Utf8Unit::kTruncated, 2},
      {"\xf0\x9f\x98", Utf8Unit::kTruncated, 3},
      {"\x80", Utf8Unit::kIllFormed, 1},
      {"\xc0\xaf", Utf8Unit::kIllFormed, 1},
      {"\xe0\x80\x80", Utf8Unit::kIllFormed, 1},      // overlong
      {"\xed\xa0\x80", Utf8Unit::kIllFormed, 1},      // surrogate
      {"\xf4\x90\x80\x80", Utf8Unit::kIllFormed, 1},  // above U+10FFFF
      {"\xe4\xbd"
       "a",
       Utf8Unit::kIllFormed, 2},
      {"\xf5", Utf8Unit::kIllFormed, 1},
  };
  for (const Case& c : cases) {
    const Utf8Unit unit = ScanUtf8(c.bytes, 0);
    EXPECT_EQ(unit.kind, c.kind) << testing::PrintToString(c.bytes);
    EXPECT_EQ(unit.length, c.length) << testing::PrintToString(c.bytes);
  }
}

TEST(Utf8, ReplacesMaximalSubparts) {
  const std::string r(kReplacementCharacter);
  EXPECT_EQ(LossyUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(LossyUtf8("\xe4\xbd\xa0\xe4\xbd"), "你" + r);
  // The example of Unicode §3.9 (U+FFFD substitution): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(LossyUtf8("a\xf1\x80\x80\xe1\x80\xc2"
                      "b\x80"
                      "c\x80\xbf"
                      "d"),
            "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_TRUE(IsWellFormedUtf8("Grüße 你好 😀"));
  EXPECT_FALSE(IsWellFormedUtf8("\xed\xbf\xbf"));
}

TEST(Utf8, FinishedPrefixStopsBeforeATruncatedCharacter) {
  EXPECT_EQ(FinishedPrefixLength("ab"), 2u);
  EXPECT_EQ(FinishedPrefixLength("ab\xe4\xbd"), 2u);
  EXPECT_EQ(FinishedPrefixLength("\xf0\x9f\x98"), 0u);
  EXPECT_EQ(FinishedPrefixLength("a\xe4"
                                 "b"),
            3u);                                            // ill-formed, not waiting
  EXPECT_EQ(FinishedPrefixLength("\x80\x80\x80\x80"), 4u);  // stray continuation bytes
  EXPECT_EQ(FinishedPrefixLength("\xe4\xbd\xa0\xe4"), 3u);
}

TEST(Utf8, EncodesAndDecodesCodePoints) {
  for (char32_t cp : {0x24u, 0xA2u, 0x20ACu, 0x10348u, 0x10FFFFu}) {
    std::string s;
    AppendUtf8(cp, &s);
    const Utf8Unit unit = ScanUtf8(s, 0);
    ASSERT_EQ(unit.kind, Utf8Unit::kCharacter);
    EXPECT_EQ(unit.length, s.size());
    EXPECT_EQ(DecodeUtf8(s, 0, unit.length), cp);
  }
}

}  // namespace
}  // namespace mla::coordinator
