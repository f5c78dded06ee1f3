// Tests SplitRegex: the Oniguruma-to-RE2 translation (Unicode \s, the \s+(?!\S) emulation,
// what is refused) and Isolated splitting, against results worked out by hand from the
// backtracking semantics.
#include "coordinator/split_regex.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<std::string> Split(const std::string& pattern, std::string_view text) {
  absl::StatusOr<SplitRegex> re = SplitRegex::Create(pattern);
  EXPECT_TRUE(re.ok()) << re.status();
  std::vector<std::string_view> pieces;
  if (re.ok()) re->Split(text, &pieces);
  return {pieces.begin(), pieces.end()};
}

TEST(SplitRegex, TranslatesUnicodeClassesAndTheSpaceLookahead) {
  absl::StatusOr<Re2Pattern> p = TranslateOnigurumaPattern(R"(a|\s+(?!\S)|\s+)");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->pattern, R"(a|(?P<mla_space_run>[\x{9}-\x{D}\x{85}\p{Z}]+))");
  EXPECT_TRUE(p->emulates_space);
  EXPECT_TRUE(p->space_fallback);
  p = TranslateOnigurumaPattern(R"([^\s\d]\S\W[\]\s])");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->pattern,
            R"([^\x{9}-\x{D}\x{85}\p{Z}\p{Nd}][^\x{9}-\x{D}\x{85}\p{Z}][^\p{L}\p{M}\p{Nd}\p{Pc}])"
            R"([\]\x{9}-\x{D}\x{85}\p{Z}])");
  EXPECT_FALSE(p->emulates_space);
}

TEST(SplitRegex, RefusesWhatRe2CannotDo) {
  EXPECT_THAT(std::string(SplitRegex::Create("a(?=b)").status().message()),
              HasSubstr("lookaround"));
  EXPECT_THAT(std::string(SplitRegex::Create(R"(\s+(?!\S)|a)").status().message()),
              HasSubstr("followed by \\s+"));
  EXPECT_THAT(std::string(SplitRegex::Create(R"([\S])").status().message()),
              HasSubstr("inside [...]"));
  EXPECT_THAT(std::string(SplitRegex::Create("a++").status().message()),
              HasSubstr("RE2 cannot compile"));
}

TEST(SplitRegex, Gpt2PatternKeepsOneSpaceForTheNextWord) {
  EXPECT_THAT(Split(kGpt2, "Hello world's end"), ElementsAre("Hello", " world", "'s", " end"));
  // Three spaces before a word: two stand alone, the third starts " b".
  EXPECT_THAT(Split(kGpt2, "a   b"), ElementsAre("a", "  ", " b"));
  // One space before punctuation is taken by " ?[^\s...]+"; spaces at the end stay together.
  EXPECT_THAT(Split(kGpt2, "x ! end   "), ElementsAre("x", " !", " end", "   "));
  // Newlines are spaces to \s; the run gives back its last character before a word.
  EXPECT_THAT(Split(kGpt2, "a\n\n b"), ElementsAre("a", "\n\n", " b"));
  // Unicode spaces count: the run " \u3000" gives back U+3000 whole (three bytes), which then
  // stands alone, as ` ?\p{L}+` takes only an ASCII space.
  EXPECT_THAT(Split(kGpt2, "a \u3000b"), ElementsAre("a", " ", "\u3000", "b"));
}

TEST(SplitRegex, LookaheadAsLastAlternativeLeavesALoneSpaceUnmatched) {
  // Without the \s+ fallback a single space before a letter matches nothing, so it stays in
  // the gap with the letters around it.
  EXPECT_THAT(Split(R"(\d+|\s+(?!\S))", "ab cd  ef 12 "),
              ElementsAre("ab cd", " ", " ef ", "12", " "));
}

TEST(SplitRegex, IsolatesMatchesAndGaps) {
  EXPECT_THAT(Split(R"(\p{N}{1,3})", "ab1234567c"), ElementsAre("ab", "123", "456", "7", "c"));
  EXPECT_THAT(Split(R"(\p{N}{1,3})", "no digits"), ElementsAre("no digits"));
  EXPECT_THAT(Split(R"(x*)", "axxb"), ElementsAre("a", "xx", "b"));  // empty matches: nothing
  EXPECT_TRUE(Split("a", "").empty());
  absl::StatusOr<SplitRegex> literal = SplitRegex::CreateLiteral("a.b");
  ASSERT_TRUE(literal.ok());
  std::vector<std::string_view> pieces;
  literal->Split("xa.byaxb", &pieces);
  EXPECT_THAT(pieces, ElementsAre("x", "a.b", "yaxb"));
}

}  // namespace
}  // namespace mla::coordinator
