// ParseModelConfig reads Hugging Face DeepSeek-V3 config.json keys (field names = struct names).
// Required: the sizes listed in kRequiredSizes. Everything else defaults as in HF's
// DeepseekV3Config (MODEL.md §1), with JSON null treated like an absent key. Inside rope_scaling
// the absent keys default as in HF's DeepseekV3YarnRotaryEmbedding (original_max_position 4096,
// beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 0); V3's config sets all of them.
#include "worker/model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "worker/status_macros.h"

namespace mla {
namespace {

using json = nlohmann::json;

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", field, ": ", what));
}

const char* TypeName(const json& v) { return v.type_name(); }

// Looks up `key` in `obj`: nullptr when absent or null.
const json* Find(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// Reads an integer field. Absent/null: error if `required`, else keeps *out.
absl::Status ReadInt(const json& obj, const char* key, bool required, int64_t* out,
                     absl::string_view prefix = "") {
  const std::string field = absl::StrCat(prefix, key);
  const json* v = Find(obj, key);
  if (v == nullptr) {
    return required ? FieldError(field, "required field is missing or null") : absl::OkStatus();
  }
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return FieldError(field, "integer out of range");
    *out = static_cast<int64_t>(u);
    return absl::OkStatus();
  }
  if (!v->is_number_integer()) {
    return FieldError(field, absl::StrCat("must be an integer, got ", TypeName(*v)));
  }
  *out = v->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadDouble(const json& obj, const char* key, double* out,
                        absl::string_view prefix = "") {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) {
    return FieldError(absl::StrCat(prefix, key),
                      absl::StrCat("must be a number, got ", TypeName(*v)));
  }
  *out = v->get<double>();
  if (!std::isfinite(*out)) return FieldError(absl::StrCat(prefix, key), "must be finite");
  return absl::OkStatus();
}

absl::Status ReadBool(const json& obj, const char* key, bool* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) {
    return FieldError(key, absl::StrCat("must be a boolean, got ", TypeName(*v)));
  }
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& obj, const char* key, std::string* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) {
    return FieldError(key, absl::StrCat("must be a string, got ", TypeName(*v)));
  }
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status RequirePositive(absl::string_view field, int64_t value) {
  if (value <= 0) return FieldError(field, absl::StrCat("must be positive, got ", value));
  return absl::OkStatus();
}

// rope_theta and rope_scaling into config->rope.
absl::Status ParseRope(const json& root, ModelConfig* config) {
  kernels::RopeConfig& rope = config->rope;
  rope = kernels::RopeConfig{};
  rope.rope_dim = config->qk_rope_head_dim;
  MLA_RETURN_IF_ERROR(ReadDouble(root, "rope_theta", &rope.theta));
  if (!(rope.theta > 1.0)) {
    return FieldError("rope_theta", absl::StrCat("must be > 1, got ", rope.theta));
  }
  const json* scaling = Find(root, "rope_scaling");
  if (scaling == nullptr) return absl::OkStatus();  // plain RoPE, factor 1
  if (!scaling->is_object()) {
    return FieldError("rope_scaling",
                      absl::StrCat("must be an object or null, got ", TypeName(*scaling)));
  }
  const char* type_key = Find(*scaling, "type") != nullptr ? "type" : "rope_type";
  std::string type;
  const json* type_value = Find(*scaling, type_key);
  if (type_value == nullptr) return FieldError("rope_scaling.type", "required field is missing");
  if (!type_value->is_string()) {
    return FieldError(absl::StrCat("rope_scaling.", type_key),
                      absl::StrCat("must be a string, got ", TypeName(*type_value)));
  }
  type = type_value->get<std::string>();
  if (type != "yarn") {
    return FieldError(absl::StrCat("rope_scaling.", type_key),
                      absl::StrCat("unsupported type \"", type, "\" (only \"yarn\")"));
  }
  const absl::string_view p = "rope_scaling.";
  if (Find(*scaling, "factor") == nullptr) {
    return FieldError("rope_scaling.factor", "required field is missing or null");
  }
  MLA_RETURN_IF_ERROR(ReadDouble(*scaling, "factor", &rope.factor, p));
  if (!(rope.factor >= 1.0)) {
    return FieldError("rope_scaling.factor", absl::StrCat("must be >= 1, got ", rope.factor));
  }
  rope.original_max_position = 4096;
  rope.beta_fast = 32.0;
  rope.beta_slow = 1.0;
  rope.mscale = 1.0;
  rope.mscale_all_dim = 0.0;
  MLA_RETURN_IF_ERROR(ReadInt(*scaling, "original_max_position_embeddings", false,
                              &rope.original_max_position, p));
  MLA_RETURN_IF_ERROR(RequirePositive("rope_scaling.original_max_position_embeddings",
                                      rope.original_max_position));
  MLA_RETURN_IF_ERROR(ReadDouble(*scaling, "beta_fast", &rope.beta_fast, p));
  MLA_RETURN_IF_ERROR(ReadDouble(*scaling, "beta_slow", &rope.beta_slow, p));
  MLA_RETURN_IF_ERROR(ReadDouble(*scaling, "mscale", &rope.mscale, p));
  MLA_RETURN_IF_ERROR(ReadDouble(*scaling, "mscale_all_dim", &rope.mscale_all_dim, p));
  if (!(rope.beta_slow > 0.0)) {
    return FieldError("rope_scaling.beta_slow", absl::StrCat("must be > 0, got ", rope.beta_slow));
  }
  if (!(rope.beta_fast > rope.beta_slow)) {
    return FieldError("rope_scaling.beta_fast",
                      absl::StrCat("must be > beta_slow (", rope.beta_slow, "), got ",
                                   rope.beta_fast));
  }
  if (rope.mscale < 0.0 || rope.mscale_all_dim < 0.0) {
    return FieldError(rope.mscale < 0.0 ? "rope_scaling.mscale" : "rope_scaling.mscale_all_dim",
                      "must be >= 0");
  }
  return absl::OkStatus();
}

// Every cross-field rule (the per-field rules ran while reading).
// Upper bounds, far above any DeepSeek-V3-like model, that keep every derived size (parameter
// counts: at most ~3 * 2^59) inside int64.
absl::Status CheckBounds(const ModelConfig& c) {
  constexpr int64_t kMaxWidth = int64_t{1} << 18, kMaxCount = int64_t{1} << 12;
  const struct {
    absl::string_view field;
    int64_t value, max;
  } bounds[] = {
      {"vocab_size", c.vocab_size, int64_t{1} << 24},
      {"hidden_size", c.hidden_size, kMaxWidth},
      {"intermediate_size", c.intermediate_size, kMaxWidth},
      {"moe_intermediate_size", c.moe_intermediate_size, kMaxWidth},
      {"q_lora_rank", c.q_lora_rank, kMaxWidth},
      {"kv_lora_rank", c.kv_lora_rank, kMaxWidth},
      {"qk_nope_head_dim", c.qk_nope_head_dim, kMaxWidth},
      {"qk_rope_head_dim", c.qk_rope_head_dim, kMaxWidth},
      {"v_head_dim", c.v_head_dim, kMaxWidth},
      {"num_hidden_layers", c.num_hidden_layers, int64_t{1} << 10},
      {"num_attention_heads", c.num_attention_heads, kMaxCount},
      {"n_routed_experts", c.n_routed_experts, kMaxCount},
      {"n_shared_experts", c.n_shared_experts, kMaxCount},
      {"num_experts_per_tok", c.num_experts_per_tok, kMaxCount},
      {"max_position_embeddings", c.max_position_embeddings, int64_t{1} << 30},
  };
  for (const auto& b : bounds) {
    if (b.value > b.max) {
      return FieldError(b.field, absl::StrCat("must be at most ", b.max, ", got ", b.value));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const ModelConfig& c) {
  MLA_RETURN_IF_ERROR(CheckBounds(c));
  if (c.qk_rope_head_dim % 2 != 0) {
    return FieldError("qk_rope_head_dim", absl::StrCat("must be even, got ", c.qk_rope_head_dim));
  }
  if (c.first_k_dense_replace < 0 || c.first_k_dense_replace > c.num_hidden_layers) {
    return FieldError("first_k_dense_replace",
                      absl::StrCat("must be in [0, num_hidden_layers = ", c.num_hidden_layers,
                                   "], got ", c.first_k_dense_replace));
  }
  MLA_RETURN_IF_ERROR(RequirePositive("moe_layer_freq", c.moe_layer_freq));
  if (c.n_shared_experts < 0) {
    return FieldError("n_shared_experts", absl::StrCat("must be >= 0, got ", c.n_shared_experts));
  }
  MLA_RETURN_IF_ERROR(RequirePositive("n_group", c.n_group));
  MLA_RETURN_IF_ERROR(RequirePositive("topk_group", c.topk_group));
  if (c.n_routed_experts % c.n_group != 0) {
    return FieldError("n_routed_experts",
                      absl::StrCat(c.n_routed_experts, " is not divisible by n_group = ",
                                   c.n_group));
  }
  if (c.topk_group > c.n_group) {
    return FieldError("topk_group", absl::StrCat("must be <= n_group = ", c.n_group, ", got ",
                                                 c.topk_group));
  }
  if (c.num_experts_per_tok > c.n_routed_experts) {
    return FieldError("num_experts_per_tok",
                      absl::StrCat("must be <= n_routed_experts = ", c.n_routed_experts,
                                   ", got ", c.num_experts_per_tok));
  }
  const int64_t reachable = c.topk_group * (c.n_routed_experts / c.n_group);
  if (c.num_experts_per_tok > reachable) {
    return FieldError("num_experts_per_tok",
                      absl::StrCat("must be <= topk_group * (n_routed_experts / n_group) = ",
                                   reachable, ", got ", c.num_experts_per_tok));
  }
  if (!(c.routed_scaling_factor > 0.0)) {
    return FieldError("routed_scaling_factor",
                      absl::StrCat("must be > 0, got ", c.routed_scaling_factor));
  }
  if (c.scoring_func != "sigmoid") {
    return FieldError("scoring_func",
                      absl::StrCat("only \"sigmoid\" is supported, got \"", c.scoring_func, "\""));
  }
  if (c.topk_method != "noaux_tc") {
    return FieldError("topk_method",
                      absl::StrCat("only \"noaux_tc\" is supported, got \"", c.topk_method, "\""));
  }
  if (!(c.rms_norm_eps > 0.0)) {
    return FieldError("rms_norm_eps", absl::StrCat("must be > 0, got ", c.rms_norm_eps));
  }
  for (auto [name, id] : {std::pair{"bos_token_id", c.bos_token_id},
                          std::pair{"eos_token_id", c.eos_token_id}}) {
    if (id < 0 || id >= c.vocab_size) {
      return FieldError(name, absl::StrCat("must be in [0, vocab_size = ", c.vocab_size,
                                           "), got ", id));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  const json root = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (root.is_discarded()) return absl::InvalidArgumentError("config.json: not valid JSON");
  if (!root.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");

  ModelConfig c;
  // q_lora_rank first: a model without query compression gets the precise message.
  const json* q_lora = Find(root, "q_lora_rank");
  if (q_lora == nullptr || (q_lora->is_number() && q_lora->get<double>() == 0.0)) {
    return FieldError("q_lora_rank", "models without query compression are not supported");
  }
  const std::pair<const char*, int64_t*> kRequiredSizes[] = {
      {"vocab_size", &c.vocab_size},
      {"hidden_size", &c.hidden_size},
      {"intermediate_size", &c.intermediate_size},
      {"moe_intermediate_size", &c.moe_intermediate_size},
      {"num_hidden_layers", &c.num_hidden_layers},
      {"num_attention_heads", &c.num_attention_heads},
      {"q_lora_rank", &c.q_lora_rank},
      {"kv_lora_rank", &c.kv_lora_rank},
      {"qk_nope_head_dim", &c.qk_nope_head_dim},
      {"qk_rope_head_dim", &c.qk_rope_head_dim},
      {"v_head_dim", &c.v_head_dim},
      {"n_routed_experts", &c.n_routed_experts},
      {"num_experts_per_tok", &c.num_experts_per_tok},
      {"max_position_embeddings", &c.max_position_embeddings},
  };
  for (const auto& [key, out] : kRequiredSizes) {
    MLA_RETURN_IF_ERROR(ReadInt(root, key, /*required=*/true, out));
    MLA_RETURN_IF_ERROR(RequirePositive(key, *out));
  }
  // Defaults of HF's DeepseekV3Config.
  c.first_k_dense_replace = 3;
  c.moe_layer_freq = 1;
  c.n_shared_experts = 1;
  c.n_group = 8;
  c.topk_group = 4;
  c.routed_scaling_factor = 2.5;
  MLA_RETURN_IF_ERROR(ReadInt(root, "first_k_dense_replace", false, &c.first_k_dense_replace));
  MLA_RETURN_IF_ERROR(ReadInt(root, "moe_layer_freq", false, &c.moe_layer_freq));
  MLA_RETURN_IF_ERROR(ReadInt(root, "n_shared_experts", false, &c.n_shared_experts));
  MLA_RETURN_IF_ERROR(ReadInt(root, "n_group", false, &c.n_group));
  MLA_RETURN_IF_ERROR(ReadInt(root, "topk_group", false, &c.topk_group));
  MLA_RETURN_IF_ERROR(ReadDouble(root, "routed_scaling_factor", &c.routed_scaling_factor));
  MLA_RETURN_IF_ERROR(ReadBool(root, "norm_topk_prob", &c.norm_topk_prob));
  MLA_RETURN_IF_ERROR(ReadString(root, "scoring_func", &c.scoring_func));
  MLA_RETURN_IF_ERROR(ReadString(root, "topk_method", &c.topk_method));
  MLA_RETURN_IF_ERROR(ReadDouble(root, "rms_norm_eps", &c.rms_norm_eps));
  MLA_RETURN_IF_ERROR(ReadInt(root, "bos_token_id", false, &c.bos_token_id));
  MLA_RETURN_IF_ERROR(ReadInt(root, "eos_token_id", false, &c.eos_token_id));
  MLA_RETURN_IF_ERROR(ReadBool(root, "tie_word_embeddings", &c.tie_word_embeddings));
  MLA_RETURN_IF_ERROR(ParseRope(root, &c));
  MLA_RETURN_IF_ERROR(Validate(c));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  absl::StatusOr<ModelConfig> config = ParseModelConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

int64_t ModelConfig::AttentionParamsPerLayer() const {
  const int64_t q_a = hidden_size * q_lora_rank;
  const int64_t q_b = q_lora_rank * num_attention_heads * qk_head_dim();
  const int64_t kv_a = hidden_size * (kv_lora_rank + qk_rope_head_dim);
  const int64_t kv_b = kv_lora_rank * num_attention_heads * (qk_nope_head_dim + v_head_dim);
  const int64_t o = num_attention_heads * v_head_dim * hidden_size;
  return q_a + q_lora_rank + q_b + kv_a + kv_lora_rank + kv_b + o;
}

int64_t ModelConfig::DenseMlpParams() const { return 3 * hidden_size * intermediate_size; }

int64_t ModelConfig::ExpertParams() const { return 3 * hidden_size * moe_intermediate_size; }

int64_t ModelConfig::MoeParamsPerLayer() const {
  const int64_t experts = (n_routed_experts + n_shared_experts) * ExpertParams();
  const int64_t router = n_routed_experts * hidden_size + n_routed_experts;  // weight + bias
  return experts + router;
}

int64_t ModelConfig::LayerParams(int64_t layer) const {
  const int64_t ffn = IsMoeLayer(layer) ? MoeParamsPerLayer() : DenseMlpParams();
  return AttentionParamsPerLayer() + ffn + 2 * hidden_size;
}

int64_t ModelConfig::TotalParams() const {
  const int64_t table = vocab_size * hidden_size;
  int64_t total = table + hidden_size + (tie_word_embeddings ? 0 : table);
  for (int64_t layer = 0; layer < num_hidden_layers; ++layer) total += LayerParams(layer);
  return total;
}

float ModelConfig::SoftmaxScale() const { return kernels::cpu::SoftmaxScale(rope, qk_head_dim()); }

kernels::MlaDims ModelConfig::MlaDimsForHeads(int64_t heads) const {
  kernels::MlaDims dims;
  dims.heads = heads;
  dims.d_latent = kv_lora_rank;
  dims.d_rope = qk_rope_head_dim;
  dims.d_nope = qk_nope_head_dim;
  dims.d_v = v_head_dim;
  return dims;
}

kernels::MoeRouting ModelConfig::Routing() const {
  kernels::MoeRouting routing;
  routing.num_experts = n_routed_experts;
  routing.top_k = num_experts_per_tok;
  routing.num_groups = n_group;
  routing.topk_groups = topk_group;
  routing.routed_scaling_factor = static_cast<float>(routed_scaling_factor);
  routing.norm_topk_prob = norm_topk_prob;
  return routing;
}

}  // namespace mla
