// Loading a shard's weights: HF tensor names (MODEL.md §6.3), TP slices (MODEL.md §7.1).
#include "worker/model_weights.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace mla {
namespace {

// Reads tensors (or this rank's slices) from the checkpoint into the backend's memory.
class Loader {
 public:
  using Shape = std::vector<int64_t>;

  Loader(const Checkpoint& ck, Backend& backend) : ck_(ck), backend_(backend) {}
  bool Has(const std::string& name) const { return ck_.Has(name); }
  absl::StatusOr<Array<bf16>> ReadBf16(const std::string& name, const Shape& shape) const {
    return Place(ck_.ReadBf16(name, shape));
  }
  absl::StatusOr<Array<bf16>> ReadBf16(const std::string& name, const Shape& shape,
                                       int64_t row_begin, int64_t row_end) const {
    return Place(ck_.ReadBf16(name, shape, row_begin, row_end));
  }
  absl::StatusOr<Array<bf16>> ReadBf16Columns(const std::string& name, const Shape& shape,
                                              int64_t col_begin, int64_t col_end) const {
    return Place(ck_.ReadBf16Columns(name, shape, col_begin, col_end));
  }
  absl::StatusOr<Array<float>> ReadFloat(const std::string& name, const Shape& shape) const {
    return Place(ck_.ReadFloat(name, shape));
  }
  template <typename T>
  absl::StatusOr<Array<T>> Place(absl::StatusOr<std::vector<T>> host) const {
    if (!host.ok()) return host.status();
    return backend_.Place(*std::move(host));
  }

 private:
  const Checkpoint& ck_;
  Backend& backend_;
};

// The slice [rank * n / size, (rank + 1) * n / size) of n items; REQUIRES: size divides n.
std::pair<int64_t, int64_t> Part(int64_t n, const ShardSpec& s) {
  return {s.tp_rank * (n / s.tp_size), (s.tp_rank + 1) * (n / s.tp_size)};
}

absl::Status CheckDivides(int64_t n, int64_t tp, const char* what) {
  if (n % tp != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel size ", tp, " does not divide ", what, " (", n, ")"));
  }
  return absl::OkStatus();
}

// gate/up split by rows, down by columns: a column/row-parallel SwiGLU of full width `width`.
absl::StatusOr<MlpWeights> LoadMlp(const Loader& ck, const std::string& prefix,
                                   int64_t hidden, int64_t width, const ShardSpec& s) {
  MlpWeights m;
  auto [b, e] = Part(width, s);
  m.width = e - b;
  MLA_ASSIGN_OR_RETURN(m.gate, ck.ReadBf16(prefix + "gate_proj.weight", {width, hidden}, b, e));
  MLA_ASSIGN_OR_RETURN(m.up, ck.ReadBf16(prefix + "up_proj.weight", {width, hidden}, b, e));
  MLA_ASSIGN_OR_RETURN(m.down, ck.ReadBf16Columns(prefix + "down_proj.weight", {hidden, width}, b, e));
  return m;
}

// A routed expert is whole on its rank.
absl::StatusOr<MlpWeights> LoadWholeMlp(const Loader& ck, const std::string& prefix,
                                        int64_t hidden, int64_t width) {
  return LoadMlp(ck, prefix, hidden, width, ShardSpec{});
}

absl::StatusOr<AttentionWeights> LoadAttention(const Loader& ck, const std::string& p,
                                               const ModelConfig& c, const ShardSpec& s) {
  AttentionWeights a;
  const int64_t H = c.num_attention_heads, d = c.hidden_size;
  const int64_t qk = c.qk_head_dim(), nv = c.qk_nope_head_dim + c.v_head_dim;
  auto [h0, h1] = Part(H, s);
  MLA_ASSIGN_OR_RETURN(a.q_a, ck.ReadBf16(p + "q_a_proj.weight", {c.q_lora_rank, d}));
  MLA_ASSIGN_OR_RETURN(a.q_a_norm, ck.ReadFloat(p + "q_a_layernorm.weight", {c.q_lora_rank}));
  MLA_ASSIGN_OR_RETURN(a.q_b, ck.ReadBf16(p + "q_b_proj.weight", {H * qk, c.q_lora_rank},
                                          h0 * qk, h1 * qk));
  MLA_ASSIGN_OR_RETURN(a.kv_a, ck.ReadBf16(p + "kv_a_proj_with_mqa.weight",
                                           {c.kv_lora_rank + c.qk_rope_head_dim, d}));
  MLA_ASSIGN_OR_RETURN(a.kv_a_norm, ck.ReadFloat(p + "kv_a_layernorm.weight", {c.kv_lora_rank}));
  MLA_ASSIGN_OR_RETURN(a.kv_b, ck.ReadBf16(p + "kv_b_proj.weight", {H * nv, c.kv_lora_rank},
                                           h0 * nv, h1 * nv));
  MLA_ASSIGN_OR_RETURN(a.o, ck.ReadBf16Columns(p + "o_proj.weight", {d, H * c.v_head_dim},
                                               h0 * c.v_head_dim, h1 * c.v_head_dim));
  return a;
}

absl::StatusOr<MoeWeights> LoadMoe(const Loader& ck, const std::string& p,
                                   const ModelConfig& c, const ShardSpec& s) {
  MoeWeights m;
  const int64_t E = c.n_routed_experts, d = c.hidden_size;
  MLA_ASSIGN_OR_RETURN(m.router, ck.ReadBf16(p + "gate.weight", {E, d}));
  if (ck.Has(p + "gate.e_score_correction_bias")) {
    MLA_ASSIGN_OR_RETURN(m.router_bias, ck.ReadFloat(p + "gate.e_score_correction_bias", {E}));
  } else {
    MLA_ASSIGN_OR_RETURN(m.router_bias, ck.Place<float>(std::vector<float>(E, 0.0f)));
  }
  auto [e0, e1] = Part(E, s);
  m.expert_begin = e0;
  for (int64_t e = e0; e < e1; ++e) {
    MlpWeights w;
    MLA_ASSIGN_OR_RETURN(w, LoadWholeMlp(ck, absl::StrCat(p, "experts.", e, "."), d,
                                         c.moe_intermediate_size));
    m.experts.push_back(std::move(w));
  }
  if (c.n_shared_experts > 0) {
    MlpWeights w;
    MLA_ASSIGN_OR_RETURN(w, LoadMlp(ck, p + "shared_experts.", d,
                                    c.n_shared_experts * c.moe_intermediate_size, s));
    m.shared = std::move(w);
  }
  return m;
}

absl::Status ValidateShard(const ModelConfig& c, const ShardSpec& s) {
  if (s.tp_size < 1 || s.tp_rank < 0 || s.tp_rank >= s.tp_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_rank ", s.tp_rank, " is outside tp_size ", s.tp_size));
  }
  if (s.layer_begin < 0 || s.layer_begin >= s.layer_end || s.layer_end > c.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", s.layer_begin, ", ",
                                                   s.layer_end, ") is not inside [0, ",
                                                   c.num_hidden_layers, ")"));
  }
  for (auto [n, what] : {std::pair{c.num_attention_heads, "num_attention_heads"},
                         {c.vocab_size, "vocab_size"},
                         {c.n_routed_experts, "n_routed_experts"},
                         {c.intermediate_size, "intermediate_size"},
                         {c.n_shared_experts * c.moe_intermediate_size,
                          "the shared experts' width"}}) {
    if (absl::Status st = CheckDivides(n, s.tp_size, what); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const Checkpoint& checkpoint, ShardSpec shard,
                                              Backend& backend) {
  const Loader ck(checkpoint, backend);
  ModelWeights w;
  w.config = checkpoint.config();
  const ModelConfig& c = w.config;
  if (shard.layer_end < 0) shard.layer_end = c.num_hidden_layers;
  if (absl::Status st = ValidateShard(c, shard); !st.ok()) return st;
  w.shard = shard;
  w.local_heads = c.num_attention_heads / shard.tp_size;
  std::tie(w.vocab_begin, w.vocab_end) = Part(c.vocab_size, shard);
  const int64_t d = c.hidden_size;
  if (w.first_stage()) {
    MLA_ASSIGN_OR_RETURN(w.embed, ck.ReadBf16("model.embed_tokens.weight", {c.vocab_size, d},
                                              w.vocab_begin, w.vocab_end));
  }
  for (int64_t l = shard.layer_begin; l < shard.layer_end; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LayerWeights layer;
    layer.layer = l;
    MLA_ASSIGN_OR_RETURN(layer.input_norm, ck.ReadFloat(p + "input_layernorm.weight", {d}));
    MLA_ASSIGN_OR_RETURN(layer.post_attn_norm,
                         ck.ReadFloat(p + "post_attention_layernorm.weight", {d}));
    MLA_ASSIGN_OR_RETURN(layer.attn, LoadAttention(ck, p + "self_attn.", c, shard));
    if (c.IsMoeLayer(l)) {
      MoeWeights moe;
      MLA_ASSIGN_OR_RETURN(moe, LoadMoe(ck, p + "mlp.", c, shard));
      layer.moe = std::move(moe);
    } else {
      MlpWeights mlp;
      MLA_ASSIGN_OR_RETURN(mlp, LoadMlp(ck, p + "mlp.", d, c.intermediate_size, shard));
      layer.dense = std::move(mlp);
    }
    w.layers.push_back(std::move(layer));
  }
  if (w.last_stage()) {
    MLA_ASSIGN_OR_RETURN(w.final_norm, ck.ReadFloat("model.norm.weight", {d}));
    MLA_ASSIGN_OR_RETURN(w.lm_head, ck.ReadBf16("lm_head.weight", {c.vocab_size, d},
                                                w.vocab_begin, w.vocab_end));
  }
  return w;
}

}  // namespace mla
