// Tests ParseModelConfig: the DeepSeek-V3 config gives MODEL.md §8's numbers exactly, each
// invalid field is rejected with a message naming it, and the tiny preset parses.
#include "worker/model_config.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mla {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// The keys of DeepSeek-V3's Hugging Face config.json that the model reads (MODEL.md §1).
json V3Json() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1,
    "n_routed_experts": 256, "ep_size": 1, "routed_scaling_factor": 2.5,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "qk_nope_head_dim": 128, "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4,
    "num_experts_per_tok": 8, "moe_layer_freq": 1, "first_k_dense_replace": 3,
    "norm_topk_prob": true, "scoring_func": "sigmoid", "hidden_act": "silu",
    "max_position_embeddings": 163840, "initializer_range": 0.02, "rms_norm_eps": 1e-06,
    "use_cache": true, "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": false,
    "rope_theta": 10000, "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40,
      "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
      "type": "yarn"},
    "attention_bias": false, "attention_dropout": 0.0, "torch_dtype": "bfloat16",
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
      "quant_method": "fp8", "weight_block_size": [128, 128]}
  })");
}

// The tiny preset of tools/synthetic_checkpoint.
json TinyJson() {
  return json::parse(R"({
    "vocab_size": 1024, "hidden_size": 256, "intermediate_size": 512,
    "moe_intermediate_size": 64, "num_hidden_layers": 4, "first_k_dense_replace": 1,
    "num_attention_heads": 8, "q_lora_rank": 96, "kv_lora_rank": 64, "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16, "v_head_dim": 32, "n_routed_experts": 8, "n_shared_experts": 1,
    "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
    "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40,
      "original_max_position_embeddings": 128, "beta_fast": 32, "beta_slow": 1, "mscale": 1,
      "mscale_all_dim": 1},
    "max_position_embeddings": 5120, "bos_token_id": 0, "eos_token_id": 1,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": false
  })");
}

absl::StatusOr<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump()); }

TEST(ModelConfig, V3FieldsAndDerivedSizes) {
  absl::StatusOr<ModelConfig> c = Parse(V3Json());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 7168);
  EXPECT_EQ(c->num_hidden_layers, 61);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_EQ(c->rope.rope_dim, 64);
  EXPECT_DOUBLE_EQ(c->rope.factor, 40.0);
  EXPECT_EQ(c->rope.original_max_position, 4096);
  EXPECT_DOUBLE_EQ(c->rope.mscale_all_dim, 1.0);
  EXPECT_EQ(c->qk_head_dim(), 192);
  EXPECT_EQ(c->AttentionParamsPerLayer(), 187107328);
  EXPECT_EQ(c->DenseMlpParams(), 396361728);
  EXPECT_EQ(c->ExpertParams(), 44040192);
  EXPECT_EQ(c->MoeParamsPerLayer(), 11320164608);
  EXPECT_EQ(c->LayerParams(0), 583483392);
  EXPECT_EQ(c->LayerParams(2), 583483392);
  EXPECT_EQ(c->LayerParams(3), 11507286272);
  EXPECT_EQ(c->LayerParams(60), 11507286272);
  EXPECT_EQ(c->TotalParams(), 671026419200);
  EXPECT_EQ(c->vocab_size * c->hidden_size, 926679040);
  EXPECT_EQ(c->CacheValuesPerTokenPerLayer(), 576);
  EXPECT_EQ(c->CacheBytesPerTokenPerLayer(), 1152);
  EXPECT_NEAR(c->SoftmaxScale(), 0.1352337789, 1e-7);
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_TRUE(c->IsMoeLayer(3));

  kernels::MlaDims dims = c->MlaDimsForHeads(16);
  EXPECT_EQ(dims.heads, 16);
  EXPECT_EQ(dims.d_cache(), 576);
  EXPECT_EQ(dims.d_qk(), 192);
  EXPECT_EQ(dims.d_v, 128);
  kernels::MoeRouting r = c->Routing();
  EXPECT_EQ(r.num_experts, 256);
  EXPECT_EQ(r.top_k, 8);
  EXPECT_EQ(r.num_groups, 8);
  EXPECT_EQ(r.topk_groups, 4);
  EXPECT_FLOAT_EQ(r.routed_scaling_factor, 2.5f);
  EXPECT_TRUE(r.norm_topk_prob);
}

TEST(ModelConfig, DefaultsFollowHfDeepseekV3Config) {
  json j = V3Json();
  for (const char* key : {"first_k_dense_replace", "moe_layer_freq", "n_shared_experts",
                          "n_group", "topk_group", "routed_scaling_factor", "norm_topk_prob",
                          "scoring_func", "topk_method", "rms_norm_eps", "bos_token_id",
                          "eos_token_id", "tie_word_embeddings", "rope_theta"}) {
    j.erase(key);
  }
  j["rope_scaling"] = nullptr;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->first_k_dense_replace, 3);
  EXPECT_EQ(c->n_shared_experts, 1);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->rope.factor, 1.0);  // null rope_scaling = plain RoPE
  EXPECT_NEAR(c->SoftmaxScale(), 1.0 / std::sqrt(192.0), 1e-7);
  EXPECT_EQ(c->TotalParams(), 671026419200);
}

TEST(ModelConfig, RopeTypeKeyAndTiedEmbeddings) {
  json j = V3Json();
  j["rope_scaling"].erase("type");
  j["rope_scaling"]["rope_type"] = "yarn";
  j["tie_word_embeddings"] = true;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope.factor, 40.0);
  EXPECT_EQ(c->TotalParams(), 671026419200 - 926679040);
}

struct BadCase {
  std::string label;
  std::string path;  // "key" or "rope_scaling.key"
  json value;        // discarded JSON value = erase the key
  std::string expected;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.label; }

class ModelConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ModelConfigErrors, NamesTheField) {
  const BadCase& bad = GetParam();
  json j = V3Json();
  json* target = &j;
  std::string key = bad.path;
  if (key.rfind("rope_scaling.", 0) == 0) {
    target = &j["rope_scaling"];
    key = key.substr(13);
  }
  if (bad.value.is_discarded()) {
    target->erase(key);
  } else {
    (*target)[key] = bad.value;
  }
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_FALSE(c.ok()) << bad.label;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad.expected)) << bad.label;
}

json Erase() { return json(json::value_t::discarded); }

INSTANTIATE_TEST_SUITE_P(
    AllFields, ModelConfigErrors,
    ::testing::Values(
        BadCase{"missing_hidden", "hidden_size", Erase(), "hidden_size: required"},
        BadCase{"missing_vocab", "vocab_size", Erase(), "vocab_size: required"},
        BadCase{"missing_experts", "n_routed_experts", Erase(), "n_routed_experts: required"},
        BadCase{"missing_maxpos", "max_position_embeddings", Erase(),
                "max_position_embeddings: required"},
        BadCase{"string_int", "num_hidden_layers", "61", "num_hidden_layers: must be an integer"},
        BadCase{"float_int", "kv_lora_rank", 512.5, "kv_lora_rank: must be an integer"},
        BadCase{"zero_heads", "num_attention_heads", 0, "num_attention_heads: must be positive"},
        BadCase{"negative_v", "v_head_dim", -128, "v_head_dim: must be positive"},
        BadCase{"odd_rope", "qk_rope_head_dim", 63, "qk_rope_head_dim: must be even"},
        BadCase{"groups_divide", "n_group", 7, "n_routed_experts: 256 is not divisible"},
        BadCase{"topk_group", "topk_group", 9, "topk_group: must be <= n_group"},
        BadCase{"too_many_active", "num_experts_per_tok", 257,
                "num_experts_per_tok: must be <= n_routed_experts"},
        BadCase{"unreachable_active", "num_experts_per_tok", 129,
                "num_experts_per_tok: must be <= topk_group * (n_routed_experts / n_group) = 128"},
        BadCase{"dense_layers", "first_k_dense_replace", 62, "first_k_dense_replace: must be in"},
        BadCase{"softmax", "scoring_func", "softmax", "scoring_func: only \"sigmoid\""},
        BadCase{"greedy", "topk_method", "greedy", "topk_method: only \"noaux_tc\""},
        BadCase{"q_lora_zero", "q_lora_rank", 0,
                "q_lora_rank: models without query compression are not supported"},
        BadCase{"q_lora_null", "q_lora_rank", nullptr,
                "q_lora_rank: models without query compression are not supported"},
        BadCase{"q_lora_string", "q_lora_rank", "1536", "q_lora_rank: must be an integer"},
        BadCase{"rope_type", "rope_scaling.type", "linear", "rope_scaling.type: unsupported"},
        BadCase{"rope_no_type", "rope_scaling.type", Erase(), "rope_scaling.type"},
        BadCase{"rope_factor", "rope_scaling.factor", 0.5, "rope_scaling.factor: must be >= 1"},
        BadCase{"rope_factor_missing", "rope_scaling.factor", Erase(),
                "rope_scaling.factor: required"},
        BadCase{"rope_factor_string", "rope_scaling.factor", "40",
                "rope_scaling.factor: must be a number"},
        BadCase{"rope_orig", "rope_scaling.original_max_position_embeddings", 0,
                "rope_scaling.original_max_position_embeddings: must be positive"},
        BadCase{"rope_beta", "rope_scaling.beta_fast", 0.5, "rope_scaling.beta_fast"},
        BadCase{"rope_theta", "rope_theta", "10000", "rope_theta: must be a number"},
        BadCase{"scale", "routed_scaling_factor", 0, "routed_scaling_factor: must be > 0"},
        BadCase{"norm_bool", "norm_topk_prob", "yes", "norm_topk_prob: must be a boolean"},
        BadCase{"eps", "rms_norm_eps", 0, "rms_norm_eps: must be > 0"},
        BadCase{"eos_range", "eos_token_id", 129280, "eos_token_id: must be in"},
        BadCase{"shared_negative", "n_shared_experts", -1, "n_shared_experts: must be >= 0"},
        BadCase{"freq", "moe_layer_freq", 0, "moe_layer_freq: must be positive"},
        BadCase{"rope_scaling_type", "rope_scaling", "yarn", "rope_scaling: must be an object"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.label; });

TEST(ModelConfig, RejectsMalformedJson) {
  EXPECT_THAT(std::string(ParseModelConfig("{\"hidden_size\": ").status().message()),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(std::string(ParseModelConfig("[1, 2]").status().message()),
              HasSubstr("not a JSON object"));
}

TEST(ModelConfig, TinyPresetParses) {
  absl::StatusOr<ModelConfig> c = Parse(TinyJson());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_group, 4);
  EXPECT_EQ(c->rope.rope_dim, 16);
  EXPECT_EQ(c->rope.original_max_position, 128);
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_EQ(c->CacheValuesPerTokenPerLayer(), 80);
  // 1/sqrt(48) * (0.1 ln 40 + 1)^2
  EXPECT_NEAR(c->SoftmaxScale(), 1.8738542071 / std::sqrt(48.0), 1e-6);
  // attention 256*96 + 96 + 96*8*48 + 256*80 + 64 + 64*8*64 + 8*32*256 = 180,384
  EXPECT_EQ(c->AttentionParamsPerLayer(), 180384);
  EXPECT_EQ(c->LayerParams(0), 180384 + 3 * 256 * 512 + 512);
  EXPECT_EQ(c->LayerParams(1), 180384 + 9 * 3 * 256 * 64 + 8 * 256 + 8 + 512);
}

TEST(ModelConfig, LoadsTheTinyCheckpointConfig) {
  const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
  if (dir == nullptr) GTEST_SKIP() << "MLA_TINY_CHECKPOINT not set";
  absl::StatusOr<ModelConfig> c = LoadModelConfig(std::string(dir) + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(LoadModelConfig("/nonexistent/config.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mla
