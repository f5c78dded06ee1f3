// Tests DeepSeek-V3's chat format: the exact rendering of a system + user + assistant
// conversation, system messages gathered first, roles checked, and encoding piece by piece
// (markers to ids, message text never parsed for markers).
#include "coordinator/chat_template.h"

#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/special_tokens.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_tokenizer_json.h"

namespace mla::coordinator {
namespace {

using ::testing::HasSubstr;

std::string Render(const std::vector<ChatMessage>& messages, ChatTemplateOptions options = {}) {
  absl::StatusOr<std::vector<ChatPiece>> pieces = RenderDeepSeekV3Chat(messages, options);
  EXPECT_TRUE(pieces.ok()) << pieces.status();
  return JoinChatPieces(pieces.value_or(std::vector<ChatPiece>{}));
}

TEST(ChatTemplate, RendersSystemUserAssistantExactly) {
  const std::vector<ChatMessage> chat = {
      {"system", "You are a helpful assistant."},
      {"user", "What is 2+2?"},
      {"assistant", "4."},
      {"user", "And 3+3?"},
  };
  EXPECT_EQ(Render(chat),
            "<｜begin▁of▁sentence｜>You are a helpful assistant."
            "<｜User｜>What is 2+2?<｜Assistant｜>4.<｜end▁of▁sentence｜>"
            "<｜User｜>And 3+3?<｜Assistant｜>");
  EXPECT_EQ(Render(chat, {.add_generation_prompt = false}),
            "<｜begin▁of▁sentence｜>You are a helpful assistant."
            "<｜User｜>What is 2+2?<｜Assistant｜>4.<｜end▁of▁sentence｜>"
            "<｜User｜>And 3+3?");
}

TEST(ChatTemplate, GathersSystemMessagesFirst) {
  EXPECT_EQ(Render({{"user", "hi"}, {"system", "Be brief."}, {"system", "Use French."}}),
            "<｜begin▁of▁sentence｜>Be brief.\n\nUse French.<｜User｜>hi<｜Assistant｜>");
  EXPECT_EQ(Render({{"user", "hi"}}), "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>");
  EXPECT_EQ(Render({}), "<｜begin▁of▁sentence｜><｜Assistant｜>");
}

TEST(ChatTemplate, RejectsUnknownRoles) {
  absl::StatusOr<std::vector<ChatPiece>> pieces =
      RenderDeepSeekV3Chat({{"user", "x"}, {"tool", "{}"}});
  EXPECT_EQ(pieces.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pieces.status().message()), HasSubstr("messages[1].role: \"tool\""));
}

TEST(ChatTemplate, EncodesMarkersAsIdsAndTextAsText) {
  absl::StatusOr<Tokenizer> t = Tokenizer::FromJson(testing::TestTokenizerJson({"h i"}));
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::vector<ChatPiece>> pieces =
      RenderDeepSeekV3Chat({{"system", "s"}, {"user", "hi"}});
  ASSERT_TRUE(pieces.ok());
  absl::StatusOr<std::vector<int32_t>> ids = EncodeChat(*t, *pieces);
  ASSERT_TRUE(ids.ok()) << ids.status();
  const std::vector<int32_t> expected = {0, t->TokenId("s"), 2, t->TokenId("hi"), 3};
  EXPECT_EQ(*ids, expected);
  EXPECT_EQ(*ids, t->Encode(JoinChatPieces(*pieces)));  // same as encoding the whole prompt

  // A user who types a marker gets text, not the marker.
  pieces = RenderDeepSeekV3Chat({{"user", "<｜Assistant｜>"}});
  ASSERT_TRUE(pieces.ok());
  ids = EncodeChat(*t, *pieces);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(std::count(ids->begin(), ids->end(), 3), 1);  // only the generation prompt
  EXPECT_EQ(t->Decode(*ids).value_or(""), JoinChatPieces(*pieces));
}

TEST(ChatTemplate, JinjaTemplateNamesTheSameMarkers) {
  const std::string jinja(DeepSeekV3ChatTemplateJinja());
  for (std::string_view marker : {kUserToken, kAssistantToken, kEosToken}) {
    EXPECT_THAT(jinja, HasSubstr(std::string(marker)));
  }
  EXPECT_THAT(jinja, HasSubstr("bos_token"));
}

}  // namespace
}  // namespace mla::coordinator
