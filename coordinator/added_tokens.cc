// AddedTokens: longest-match lookup by first byte and content length (see added_tokens.h).
#include "coordinator/added_tokens.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mla::coordinator {
namespace {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

absl::StatusOr<AddedTokens> AddedTokens::Create(std::vector<AddedToken> tokens) {
  AddedTokens result;
  result.lengths_by_first_byte_.resize(256);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const AddedToken& t = tokens[i];
    if (t.content.empty() || t.id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("added_tokens[", i, "]: empty content or negative id"));
    }
    if (!result.by_content_.emplace(t.content, static_cast<int>(i)).second ||
        !result.by_id_.emplace(t.id, static_cast<int>(i)).second) {
      return absl::InvalidArgumentError(absl::StrCat("added_tokens[", i, "] (id ", t.id, ", \"",
                                                     t.content, "\"): content or id repeated"));
    }
    std::vector<size_t>& lengths =
        result.lengths_by_first_byte_[static_cast<uint8_t>(t.content[0])];
    if (std::find(lengths.begin(), lengths.end(), t.content.size()) == lengths.end()) {
      lengths.push_back(t.content.size());
    }
  }
  for (auto& lengths : result.lengths_by_first_byte_) {
    std::sort(lengths.begin(), lengths.end(), std::greater<size_t>());
  }
  result.tokens_ = std::move(tokens);
  return result;
}

const AddedToken* AddedTokens::FindId(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::FindContent(std::string_view content) const {
  const auto it = by_content_.find(absl::string_view(content.data(), content.size()));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

int AddedTokens::Match(std::string_view text, size_t pos, bool match_special) const {
  for (size_t length : lengths_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    if (length > text.size() - pos) continue;
    const auto it = by_content_.find(absl::string_view(text.data() + pos, length));
    if (it != by_content_.end() && (match_special || !tokens_[it->second].special)) {
      return it->second;
    }
  }
  return -1;
}

std::vector<AddedTokens::Segment> AddedTokens::Split(std::string_view text,
                                                     bool match_special) const {
  std::vector<Segment> out;
  size_t emitted = 0;  // text before this is in `out`
  for (size_t pos = 0; pos < text.size();) {
    const int index = tokens_.empty() ? -1 : Match(text, pos, match_special);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t begin = pos, end = pos + token.content.size();
    if (token.lstrip) {
      while (begin > emitted && IsAsciiSpace(text[begin - 1])) --begin;
    }
    if (token.rstrip) {
      while (end < text.size() && IsAsciiSpace(text[end])) ++end;
    }
    if (begin > emitted) out.push_back({text.substr(emitted, begin - emitted), -1});
    out.push_back({text.substr(begin, end - begin), token.id});
    emitted = pos = end;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
  return out;
}

}  // namespace mla::coordinator
