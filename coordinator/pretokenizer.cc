// Pretokenizer: the tokenizer.json "pre_tokenizer" forms byte-level BPE uses (see
// pretokenizer.h).
#include "coordinator/pretokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/json_fields.h"
#include "coordinator/utf8.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator {
namespace {

using nlohmann::json;

// GPT-2's pattern, which a ByteLevel step with use_regex true splits by.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Piece {
  std::string_view text;
  bool ill_formed;  // a maximal ill-formed UTF-8 subpart: no regex sees it
};

}  // namespace

std::vector<std::string> DeepSeekV3SplitPatterns() {
  return {
      R"(\p{N}{1,3})",
      // U+4E00-U+9FA5 (CJK ideographs), U+3040-U+309F (hiragana), U+30A0-U+30FF (katakana).
      "[一-龥぀-ゟ゠-ヿ]+",
      // Punctuation + ASCII letters | letters with one leading non-letter | punctuation and
      // symbols | newlines | spaces not before a word | spaces. "\r\n" are the characters.
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
  };
}

nlohmann::ordered_json PretokenizerJson(const std::vector<std::string>& patterns) {
  nlohmann::ordered_json steps = nlohmann::ordered_json::array();
  for (const std::string& pattern : patterns) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", pattern}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"},
                   {"add_prefix_space", false},
                   {"trim_offsets", true},
                   {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
}

absl::StatusOr<Pretokenizer> Pretokenizer::FromJson(const json& pre_tokenizer) {
  Pretokenizer result;
  if (pre_tokenizer.is_null()) return result;
  if (absl::Status s = result.Add(pre_tokenizer, "pre_tokenizer"); !s.ok()) return s;
  return result;
}

absl::StatusOr<Pretokenizer> Pretokenizer::FromPatterns(const std::vector<std::string>& patterns) {
  Pretokenizer result;
  for (const std::string& pattern : patterns) {
    absl::StatusOr<SplitRegex> step = SplitRegex::Create(pattern);
    if (!step.ok()) return step.status();
    result.steps_.push_back(*std::move(step));
  }
  return result;
}

absl::Status Pretokenizer::Add(const json& step, const std::string& where) {
  const std::string* type = step.is_object() ? StringField(step, "type") : nullptr;
  if (type == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a type"));
  }
  if (*type == "Sequence") {
    const auto it = step.find("pretokenizers");
    if (it == step.end() || !it->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".pretokenizers: not an array"));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string at = absl::StrCat(where, ".pretokenizers[", i, "]");
      if (absl::Status s = Add((*it)[i], at); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (*type == "ByteLevel") {
    absl::StatusOr<bool> prefix = BoolField(step, "add_prefix_space", true, where);
    absl::StatusOr<bool> use_regex = BoolField(step, "use_regex", true, where);
    if (!prefix.ok()) return prefix.status();
    if (!use_regex.ok()) return use_regex.status();
    if (*prefix) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ByteLevel add_prefix_space true is not supported"));
    }
    has_byte_level_ = true;
    if (!*use_regex) return absl::OkStatus();
    absl::StatusOr<SplitRegex> gpt2 = SplitRegex::Create(kGpt2Pattern);
    if (!gpt2.ok()) return gpt2.status();
    steps_.push_back(*std::move(gpt2));
    return absl::OkStatus();
  }
  if (*type != "Split") {
    return absl::InvalidArgumentError(absl::StrCat(where, ": pre-tokenizer type \"", *type,
                                                   "\" is not supported (Sequence, Split, "
                                                   "ByteLevel)"));
  }
  const std::string* behavior = StringField(step, "behavior");
  if (behavior == nullptr || *behavior != "Isolated") {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".behavior: only \"Isolated\" is supported"));
  }
  absl::StatusOr<bool> invert = BoolField(step, "invert", false, where);
  if (!invert.ok()) return invert.status();
  if (*invert) return absl::InvalidArgumentError(absl::StrCat(where, ".invert: must be false"));
  const auto pattern = step.find("pattern");
  const std::string* regex = nullptr;
  const std::string* literal = nullptr;
  if (pattern != step.end() && pattern->is_object()) {
    regex = StringField(*pattern, "Regex");
    literal = StringField(*pattern, "String");
  }
  if (regex == nullptr && literal == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}"));
  }
  absl::StatusOr<SplitRegex> split =
      regex != nullptr ? SplitRegex::Create(*regex) : SplitRegex::CreateLiteral(*literal);
  if (!split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", split.status().message()));
  }
  steps_.push_back(*std::move(split));
  return absl::OkStatus();
}

std::vector<std::string_view> Pretokenizer::Split(std::string_view text) const {
  std::vector<Piece> pieces;
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit unit = ScanUtf8(text, pos);
    if (unit.kind != Utf8Unit::kCharacter) {
      if (pos > start) pieces.push_back({text.substr(start, pos - start), false});
      pieces.push_back({text.substr(pos, unit.length), true});
      start = pos + unit.length;
    }
    pos += unit.length;
  }
  if (start < text.size()) pieces.push_back({text.substr(start), false});

  std::vector<Piece> next;
  std::vector<std::string_view> cut;
  for (const SplitRegex& step : steps_) {
    next.clear();
    for (const Piece& piece : pieces) {
      if (piece.ill_formed) {
        next.push_back(piece);
        continue;
      }
      cut.clear();
      step.Split(piece.text, &cut);
      for (std::string_view c : cut) next.push_back({c, false});
    }
    pieces.swap(next);
  }
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Piece& piece : pieces) out.push_back(piece.text);
  return out;
}

}  // namespace mla::coordinator
