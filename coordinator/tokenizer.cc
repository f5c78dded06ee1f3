// Tokenizer: loading a byte-level BPE tokenizer.json, encode and decode (see tokenizer.h).
#include "coordinator/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/json_fields.h"
#include "coordinator/special_tokens.h"
#include "coordinator/utf8.h"
#include "nlohmann/json.hpp"
#include "worker/status_macros.h"

namespace mla::coordinator {
namespace {

using nlohmann::json;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json ", where, ": ", what));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return absl::InternalError(absl::StrCat("cannot read ", path));
  return text;
}

absl::StatusOr<json> ParseObject(std::string_view text, const char* what) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  }
  return doc;
}

// One merge: "left right" (the classic form) or ["left", "right"] (the newer one).
absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const json& merge, size_t i) {
  const std::string where = absl::StrCat("model.merges[", i, "]");
  if (merge.is_string()) {
    const std::string& s = merge.get_ref<const std::string&>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
        s.find(' ', space + 1) != std::string::npos) {
      return Invalid(where, "expected \"left right\"");
    }
    return std::make_pair(s.substr(0, space), s.substr(space + 1));
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return Invalid(where, "expected \"left right\" or [left, right]");
}

absl::StatusOr<BpeModel> ParseModel(const json& model) {
  if (!model.is_object()) return Invalid("model", "missing or not an object");
  const std::string* type = StringField(model, "type");
  if (type != nullptr && *type != "BPE") {
    return Invalid("model.type", absl::StrCat("\"", *type, "\" is not supported (BPE)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const std::string* affix = StringField(model, key);
    if (affix != nullptr && !affix->empty()) return Invalid(key, "is not supported");
  }
  if (const auto it = model.find("dropout");
      it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0)) {
    return Invalid("model.dropout", "is not supported");
  }
  MLA_ASSIGN_OR_RETURN(const bool byte_fallback,
                       BoolField(model, "byte_fallback", false, "tokenizer.json model"));
  if (byte_fallback) return Invalid("model.byte_fallback", "true is not supported");
  MLA_ASSIGN_OR_RETURN(const bool ignore_merges,
                       BoolField(model, "ignore_merges", false, "tokenizer.json model"));

  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    return Invalid("model.vocab", "missing or not an object");
  }
  absl::flat_hash_map<std::string, int32_t> vocab;
  vocab.reserve(vocab_it->size());
  for (const auto& [text, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return Invalid(absl::StrCat("model.vocab[\"", text, "\"]"), "not an id");
    }
    vocab.emplace(text, static_cast<int32_t>(id.get<int64_t>()));
  }
  const auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) {
    return Invalid("model.merges", "missing or not an array");
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_it->size());
  for (size_t i = 0; i < merges_it->size(); ++i) {
    MLA_ASSIGN_OR_RETURN(auto merge, ParseMerge((*merges_it)[i], i));
    merges.push_back(std::move(merge));
  }
  absl::StatusOr<BpeModel> bpe = BpeModel::Create(std::move(vocab), merges, ignore_merges);
  if (!bpe.ok()) return Invalid("model", bpe.status().message());
  return bpe;
}

absl::StatusOr<AddedTokens> ParseAddedTokens(const json& doc) {
  const auto it = doc.find("added_tokens");
  std::vector<AddedToken> tokens;
  if (it == doc.end() || it->is_null()) return AddedTokens::Create(std::move(tokens));
  if (!it->is_array()) return Invalid("added_tokens", "not an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& entry = (*it)[i];
    const std::string where = absl::StrCat("tokenizer.json added_tokens[", i, "]");
    const std::string* content = StringField(entry, "content");
    const auto id = entry.is_object() ? entry.find("id") : entry.end();
    if (content == nullptr || id == entry.end() || !id->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs an id and a content"));
    }
    constexpr int64_t kMaxId = int64_t{1} << 24;  // as config.json's vocab_size bound
    if (id->get<int64_t>() < 0 || id->get<int64_t>() >= kMaxId) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": id ", id->get<int64_t>(), " is outside [0, ", kMaxId, ")"));
    }
    AddedToken token;
    token.id = static_cast<int32_t>(id->get<int64_t>());
    token.content = *content;
    MLA_ASSIGN_OR_RETURN(token.special, BoolField(entry, "special", false, where));
    MLA_ASSIGN_OR_RETURN(token.lstrip, BoolField(entry, "lstrip", false, where));
    MLA_ASSIGN_OR_RETURN(token.rstrip, BoolField(entry, "rstrip", false, where));
    MLA_ASSIGN_OR_RETURN(const bool single_word, BoolField(entry, "single_word", false, where));
    if (single_word) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": single_word is not supported"));
    }
    tokens.push_back(std::move(token));
  }
  absl::StatusOr<AddedTokens> added = AddedTokens::Create(std::move(tokens));
  if (!added.ok()) return Invalid("added_tokens", added.status().message());
  return added;
}

absl::Status CheckNormalizerAndDecoder(const json& doc) {
  const auto normalizer = doc.find("normalizer");
  if (normalizer != doc.end() && !normalizer->is_null()) {
    const std::string* type = StringField(*normalizer, "type");
    const auto steps =
        normalizer->is_object() ? normalizer->find("normalizers") : normalizer->end();
    const bool empty_sequence = type != nullptr && *type == "Sequence" &&
                                steps != normalizer->end() && steps->is_array() && steps->empty();
    if (!empty_sequence) return Invalid("normalizer", "only null or an empty Sequence");
  }
  const auto decoder = doc.find("decoder");
  const std::string* type = decoder == doc.end() ? nullptr : StringField(*decoder, "type");
  if (type == nullptr || *type != "ByteLevel") return Invalid("decoder", "must be ByteLevel");
  return absl::OkStatus();
}

// The id of the token named by a tokenizer_config.json entry (a string or {"content": ...});
// `current` if the entry is absent or null.
absl::StatusOr<int32_t> ConfigTokenId(const Tokenizer& tokenizer, const json& config,
                                      const char* key, int32_t current) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return current;
  const std::string* content =
      it->is_string() ? &it->get_ref<const std::string&>() : StringField(*it, "content");
  if (content == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer_config.json ", key, ": expected a string or {\"content\"}"));
  }
  const int32_t id = tokenizer.TokenId(*content);
  if (id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer_config.json ", key, ": \"", *content, "\" is not a token"));
  }
  return id;
}

}  // namespace

Tokenizer::Tokenizer(BpeModel model, AddedTokens added, Pretokenizer pretokenizer)
    : model_(std::move(model)), added_(std::move(added)), pretokenizer_(std::move(pretokenizer)) {
  vocab_size_ = model_.max_id() + 1;
  for (const AddedToken& t : added_.tokens()) vocab_size_ = std::max(vocab_size_, t.id + 1);
  bos_id_ = TokenId(kBosToken);
  eos_id_ = TokenId(kEosToken);
}

absl::StatusOr<Tokenizer> Tokenizer::FromJson(std::string_view tokenizer_json) {
  MLA_ASSIGN_OR_RETURN(const json doc, ParseObject(tokenizer_json, "tokenizer.json"));
  MLA_RETURN_IF_ERROR(CheckNormalizerAndDecoder(doc));
  const auto pre = doc.find("pre_tokenizer");
  absl::StatusOr<Pretokenizer> pretokenizer =
      Pretokenizer::FromJson(pre == doc.end() ? json() : *pre);
  if (!pretokenizer.ok()) return Invalid("pre_tokenizer", pretokenizer.status().message());
  if (!pretokenizer->has_byte_level()) return Invalid("pre_tokenizer", "has no ByteLevel step");
  const auto model = doc.find("model");
  MLA_ASSIGN_OR_RETURN(BpeModel bpe, ParseModel(model == doc.end() ? json() : *model));
  MLA_ASSIGN_OR_RETURN(AddedTokens added, ParseAddedTokens(doc));
  return Tokenizer(std::move(bpe), std::move(added), *std::move(pretokenizer));
}

absl::StatusOr<Tokenizer> Tokenizer::FromDirectory(const std::string& dir) {
  MLA_ASSIGN_OR_RETURN(const std::string text, ReadFile(dir + "/tokenizer.json"));
  MLA_ASSIGN_OR_RETURN(Tokenizer tokenizer, FromJson(text));
  absl::StatusOr<std::string> config = ReadFile(dir + "/tokenizer_config.json");
  if (absl::IsNotFound(config.status())) return tokenizer;
  if (!config.ok()) return config.status();
  MLA_RETURN_IF_ERROR(tokenizer.ApplyConfig(*config));
  return tokenizer;
}

absl::Status Tokenizer::ApplyConfig(std::string_view tokenizer_config_json) {
  MLA_ASSIGN_OR_RETURN(const json config,
                       ParseObject(tokenizer_config_json, "tokenizer_config.json"));
  MLA_ASSIGN_OR_RETURN(bos_id_, ConfigTokenId(*this, config, "bos_token", bos_id_));
  MLA_ASSIGN_OR_RETURN(eos_id_, ConfigTokenId(*this, config, "eos_token", eos_id_));
  if (const std::string* chat = StringField(config, "chat_template")) chat_template_ = *chat;
  return absl::OkStatus();
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (options.add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  for (const AddedTokens::Segment& segment : added_.Split(text, options.parse_special)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    for (std::string_view piece : pretokenizer_.Split(segment.text)) {
      model_.EncodeWord(piece, &ids);
    }
  }
  return ids;
}

absl::Status Tokenizer::AppendTokenBytes(int32_t id, const DecodeOptions& options,
                                         std::string* out) const {
  if (const AddedToken* added = added_.FindId(id)) {
    if (!(added->special && options.skip_special)) out->append(added->content);
    return absl::OkStatus();
  }
  const std::string* bytes = model_.TokenBytes(id);
  if (bytes == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is not in the vocabulary (size ", vocab_size_, ")"));
  }
  out->append(*bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Tokenizer::DecodeBytes(std::span<const int32_t> ids,
                                                   const DecodeOptions& options) const {
  std::string bytes;
  for (int32_t id : ids) MLA_RETURN_IF_ERROR(AppendTokenBytes(id, options, &bytes));
  return bytes;
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                              const DecodeOptions& options) const {
  MLA_ASSIGN_OR_RETURN(const std::string bytes, DecodeBytes(ids, options));
  return LossyUtf8(bytes);
}

int32_t Tokenizer::TokenId(std::string_view token) const {
  if (const AddedToken* added = added_.FindContent(token)) return added->id;
  return model_.TokenId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* added = added_.FindId(id);
  return added != nullptr && added->special;
}

}  // namespace mla::coordinator
