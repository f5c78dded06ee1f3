// Tests AddedTokens: longest match, leftmost first, special matching on request, strip flags
// and the creation checks.
#include "coordinator/added_tokens.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Segments as "text" or "text#id".
std::vector<std::string> Show(const AddedTokens& added, std::string_view text, bool special) {
  std::vector<std::string> out;
  for (const AddedTokens::Segment& s : added.Split(text, special)) {
    out.push_back(s.id < 0 ? std::string(s.text)
                           : std::string(s.text) + "#" + std::to_string(s.id));
  }
  return out;
}

AddedTokens Make(std::vector<AddedToken> tokens) {
  absl::StatusOr<AddedTokens> added = AddedTokens::Create(std::move(tokens));
  EXPECT_TRUE(added.ok()) << added.status();
  return *std::move(added);
}

TEST(AddedTokens, LongestAtEachPositionLeftmostFirst) {
  const AddedTokens added =
      Make({{10, "<a>", true}, {11, "<a><b>", true}, {12, "b>", false}, {13, "<b>", true}});
  EXPECT_THAT(Show(added, "x<a><b>y<a>z", true), ElementsAre("x", "<a><b>#11", "y", "<a>#10", "z"));
  // Without specials only the non-special "b>" is found.
  EXPECT_THAT(Show(added, "x<a><b>y", false), ElementsAre("x<a><", "b>#12", "y"));
  EXPECT_THAT(Show(added, "", true), ElementsAre());
  EXPECT_THAT(Show(Make({}), "plain", true), ElementsAre("plain"));
}

TEST(AddedTokens, StripFlagsTakeNeighbouringWhitespace) {
  const AddedTokens added =
      Make({{1, "<l>", true, /*lstrip=*/true, false}, {2, "<r>", true, false, /*rstrip=*/true}});
  EXPECT_THAT(Show(added, "a  <l> b", true), ElementsAre("a", "  <l>#1", " b"));
  EXPECT_THAT(Show(added, "a <r>\n b", true), ElementsAre("a ", "<r>\n #2", "b"));
}

TEST(AddedTokens, FindsByIdAndContentAndChecksDuplicates) {
  const AddedTokens added = Make({{7, "<x>", true}});
  ASSERT_NE(added.FindId(7), nullptr);
  EXPECT_EQ(added.FindId(7)->content, "<x>");
  EXPECT_EQ(added.FindContent("<x>")->id, 7);
  EXPECT_EQ(added.FindId(8), nullptr);
  EXPECT_THAT(std::string(AddedTokens::Create({{1, "<x>"}, {2, "<x>"}}).status().message()),
              HasSubstr("repeated"));
  EXPECT_THAT(std::string(AddedTokens::Create({{1, ""}}).status().message()),
              HasSubstr("empty content"));
}

}  // namespace
}  // namespace mla::coordinator
