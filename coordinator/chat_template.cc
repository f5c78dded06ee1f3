// DeepSeek-V3's chat format (see chat_template.h).
#include "coordinator/chat_template.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/special_tokens.h"

namespace mla::coordinator {
namespace {

void AddPiece(std::string_view text, bool is_marker, std::vector<ChatPiece>* pieces) {
  if (!text.empty()) pieces->push_back({std::string(text), is_marker});
}

}  // namespace

absl::StatusOr<std::vector<ChatPiece>> RenderDeepSeekV3Chat(
    const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  std::string system;
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role: \"", role,
                                                     "\" (expected system, user or assistant)"));
    }
    if (role != "system") continue;
    if (!first_system) system += "\n\n";
    system += messages[i].content;
    first_system = false;
  }
  std::vector<ChatPiece> pieces;
  AddPiece(kBosToken, true, &pieces);
  AddPiece(system, false, &pieces);
  for (const ChatMessage& message : messages) {
    if (message.role == "user") {
      AddPiece(kUserToken, true, &pieces);
      AddPiece(message.content, false, &pieces);
    } else if (message.role == "assistant") {
      AddPiece(kAssistantToken, true, &pieces);
      AddPiece(message.content, false, &pieces);
      AddPiece(kEosToken, true, &pieces);
    }
  }
  if (options.add_generation_prompt) AddPiece(kAssistantToken, true, &pieces);
  return pieces;
}

std::string JoinChatPieces(const std::vector<ChatPiece>& pieces) {
  std::string text;
  for (const ChatPiece& piece : pieces) text += piece.text;
  return text;
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer,
                                                const std::vector<ChatPiece>& pieces) {
  std::vector<int32_t> ids;
  for (const ChatPiece& piece : pieces) {
    if (piece.is_marker) {
      const int32_t id = tokenizer.TokenId(piece.text);
      if (id < 0) {
        return absl::NotFoundError(
            absl::StrCat("chat marker \"", piece.text, "\" is not a token of this tokenizer"));
      }
      ids.push_back(id);
      continue;
    }
    const std::vector<int32_t> text_ids =
        tokenizer.Encode(piece.text, {.add_bos = false, .parse_special = false});
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  }
  return ids;
}

std::string_view DeepSeekV3ChatTemplateJinja() {
  // Two passes over the messages: system texts first (joined by blank lines), then the turns.
  return "{%- set ns = namespace(system='', first=true) -%}"
         "{%- for m in messages if m['role'] == 'system' -%}"
         "{%- if not ns.first %}{% set ns.system = ns.system + '\\n\\n' %}{% endif -%}"
         "{%- set ns.system = ns.system + m['content'] -%}{%- set ns.first = false -%}"
         "{%- endfor -%}"
         "{{ bos_token }}{{ ns.system }}"
         "{%- for m in messages -%}"
         "{%- if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
         "{%- elif m['role'] == 'assistant' -%}"
         "{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}"
         "{%- endif -%}"
         "{%- endfor -%}"
         "{%- if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif -%}";
}

}  // namespace mla::coordinator
