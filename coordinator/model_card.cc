#include "coordinator/model_card.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "coordinator/config_hash.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator {
namespace {

// The integer field `key` of `config`, in [min, int32 max]; `fallback` when absent and
// fallback >= min.
absl::StatusOr<int32_t> IntField(const nlohmann::json& config, const char* key, int64_t min,
                                 int64_t fallback = std::numeric_limits<int64_t>::min()) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    if (fallback >= min) return static_cast<int32_t>(fallback);
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " is missing"));
  }
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " is not an integer"));
  }
  const int64_t v = it->get<int64_t>();
  if (v < min || v > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " is ", v,
                                                   "; must be in [", min, ", 2^31)"));
  }
  return static_cast<int32_t>(v);
}

}  // namespace

absl::StatusOr<ModelCard> ParseModelCard(const std::string& config_json) {
  nlohmann::json config = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) {
    return absl::InvalidArgumentError("config.json is not a JSON object");
  }
  ModelCard card;
  card.config_hash = ConfigHash(config_json);
  auto field = [&](int32_t* out, const char* key, int64_t min, int64_t fallback) -> absl::Status {
    absl::StatusOr<int32_t> v = IntField(config, key, min, fallback);
    if (!v.ok()) return v.status();
    *out = *v;
    return absl::OkStatus();
  };
  constexpr int64_t kRequired = std::numeric_limits<int64_t>::min();
  int32_t kv_lora_rank = 0, rope_dim = 0;
  for (absl::Status s : {field(&card.vocab_size, "vocab_size", 1, kRequired),
                         field(&card.num_layers, "num_hidden_layers", 1, kRequired),
                         field(&card.num_heads, "num_attention_heads", 1, kRequired),
                         field(&card.hidden_size, "hidden_size", 1, kRequired),
                         field(&card.max_context_len, "max_position_embeddings", 2, kRequired),
                         field(&kv_lora_rank, "kv_lora_rank", 1, kRequired),
                         field(&rope_dim, "qk_rope_head_dim", 0, kRequired),
                         field(&card.eos_token_id, "eos_token_id", -1, -1)}) {
    if (!s.ok()) return s;
  }
  if (card.eos_token_id >= card.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: eos_token_id is ",
                                                   card.eos_token_id, "; vocab_size is ",
                                                   card.vocab_size));
  }
  card.cache_bytes_per_token = int64_t{2} * (kv_lora_rank + rope_dim) * card.num_layers;
  return card;
}

absl::StatusOr<ModelCard> LoadModelCard(const std::string& checkpoint_dir) {
  absl::StatusOr<std::string> text = ReadConfigJson(checkpoint_dir);
  if (!text.ok()) return text.status();
  absl::StatusOr<ModelCard> card = ParseModelCard(*text);
  if (!card.ok()) return card.status();
  card->checkpoint_path = checkpoint_dir;
  std::string dir = checkpoint_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.find_last_of('/');
  card->name = slash == std::string::npos ? dir : dir.substr(slash + 1);
  return card;
}

}  // namespace mla::coordinator
