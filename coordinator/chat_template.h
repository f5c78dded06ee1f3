// DeepSeek-V3's chat format: renders a conversation (system / user / assistant messages) into
// the prompt the model was trained on, and encodes it.
//
//   <｜begin▁of▁sentence｜>{system texts, joined by "\n\n"}
//   for each user message:      <｜User｜>{content}
//   for each assistant message: <｜Assistant｜>{content}<｜end▁of▁sentence｜>
//   then, with add_generation_prompt: <｜Assistant｜>
//
// This is what the released tokenizer_config.json's chat_template produces for conversations
// without tool calls. System messages may appear anywhere; all go first, in order.
//
// The rendering is a list of pieces: markers (special token texts) and message texts. Encoding
// piece by piece (EncodeChat) turns markers into their ids and message texts into ordinary
// tokens, so a message that contains "<｜User｜>" cannot inject a marker; it encodes exactly like
// Tokenizer::Encode(JoinChatPieces(pieces)) whenever the messages contain no special token text.
//
// Pure functions; any thread.
#ifndef MLASERVE_COORDINATOR_CHAT_TEMPLATE_H_
#define MLASERVE_COORDINATOR_CHAT_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer.h"

namespace mla::coordinator {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct ChatPiece {
  std::string text;
  bool is_marker = false;  // a special token's text (bos, eos, <｜User｜>, <｜Assistant｜>)
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;  // end with <｜Assistant｜> for the model to answer
};

// The pieces of the rendered conversation; empty texts are left out. InvalidArgument naming the
// message index for a role other than system, user or assistant.
absl::StatusOr<std::vector<ChatPiece>> RenderDeepSeekV3Chat(
    const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {});

// The prompt as text (the pieces concatenated).
std::string JoinChatPieces(const std::vector<ChatPiece>& pieces);

// Markers become their ids (NotFound naming a marker the tokenizer lacks); texts are encoded
// with parse_special false.
absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer,
                                                const std::vector<ChatPiece>& pieces);

// A Jinja chat_template for tokenizer_config.json that renders the same format (bos_token is a
// template variable, as Hugging Face passes it).
std::string_view DeepSeekV3ChatTemplateJinja();

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_CHAT_TEMPLATE_H_
