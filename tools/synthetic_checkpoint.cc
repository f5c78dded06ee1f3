// Synthetic DeepSeek-V3 checkpoints: the presets, the tensor inventory, the counter-based value
// generator and the sharded writer (see synthetic_checkpoint.h).
#include "tools/synthetic_checkpoint.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tools/text_file.h"
#include "absl/strings/str_format.h"
#include "kernels/bf16.h"
#include "nlohmann/json.hpp"
#include "tools/bpe_trainer.h"
#include "worker/status_macros.h"

namespace mla::tools {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json TinyConfig() {
  return ordered_json{
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"model_type", "deepseek_v3"},
      {"vocab_size", 1024},
      {"hidden_size", 256},
      {"intermediate_size", 512},
      {"moe_intermediate_size", 64},
      {"num_hidden_layers", 4},
      {"num_nextn_predict_layers", 0},
      {"first_k_dense_replace", 1},
      {"moe_layer_freq", 1},
      {"num_attention_heads", 8},
      {"num_key_value_heads", 8},
      {"q_lora_rank", 96},
      {"kv_lora_rank", 64},
      {"qk_nope_head_dim", 32},
      {"qk_rope_head_dim", 16},
      {"v_head_dim", 32},
      {"n_routed_experts", 8},
      {"n_shared_experts", 1},
      {"num_experts_per_tok", 2},
      {"n_group", 4},
      {"topk_group", 2},
      {"routed_scaling_factor", 2.5},
      {"topk_method", "noaux_tc"},
      {"scoring_func", "sigmoid"},
      {"norm_topk_prob", true},
      {"hidden_act", "silu"},
      {"rope_theta", 10000},
      {"rope_scaling",
       {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 128},
        {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
      {"max_position_embeddings", 5120},
      {"rms_norm_eps", 1e-6},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"tie_word_embeddings", false},
      {"attention_bias", false},
      {"torch_dtype", "bfloat16"},
  };
}

// DeepSeek-V3's per-head MLA dims (kv_lora 512, rope 64, nope 128, v 128), which the GPU
// attention kernels require.
void SetV3HeadDims(ordered_json& c) {
  c["kv_lora_rank"] = 512;
  c["qk_nope_head_dim"] = 128;
  c["qk_rope_head_dim"] = 64;
  c["v_head_dim"] = 128;
}

// The tiny widths with V3's head dims and 16 heads: the model the GPU tests compare with the CPU.
ordered_json TinyMlaConfig() {
  ordered_json c = TinyConfig();
  c["num_attention_heads"] = 16;
  c["num_key_value_heads"] = 16;
  SetV3HeadDims(c);
  return c;
}

// DeepSeek-V3's config.json (MODEL.md §1) without the MTP layer and the FP8 quantization block.
ordered_json V3Config() {
  ordered_json c = TinyConfig();
  c["vocab_size"] = 129280;
  c["hidden_size"] = 7168;
  c["intermediate_size"] = 18432;
  c["moe_intermediate_size"] = 2048;
  c["num_hidden_layers"] = 61;
  c["first_k_dense_replace"] = 3;
  c["num_attention_heads"] = 128;
  c["num_key_value_heads"] = 128;
  c["q_lora_rank"] = 1536;
  SetV3HeadDims(c);
  c["n_routed_experts"] = 256;
  c["num_experts_per_tok"] = 8;
  c["n_group"] = 8;
  c["topk_group"] = 4;
  c["rope_scaling"]["original_max_position_embeddings"] = 4096;
  c["max_position_embeddings"] = 163840;
  return c;
}

// SplitMix64's output function.
uint64_t Finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(),
                                                suffix) == 0;
}

// A weight of shape [out, in]; output projections get the depth factor.
SyntheticTensor LinearTensor(std::string name, int64_t out, int64_t in, int64_t num_layers) {
  double std_dev = 1.0 / std::sqrt(static_cast<double>(in));
  if (EndsWith(name, "o_proj.weight") || EndsWith(name, "down_proj.weight")) {
    std_dev /= std::sqrt(2.0 * static_cast<double>(num_layers));
  }
  return {{std::move(name), DType::kBF16, {out, in}}, 0.0f,
          static_cast<float>(std_dev * std::sqrt(3.0))};
}

SyntheticTensor NormTensor(std::string name, int64_t dim) {
  return {{std::move(name), DType::kBF16, {dim}}, 1.0f, 0.05f};
}

void AddMlp(const std::string& prefix, int64_t hidden, int64_t width, int64_t num_layers,
            std::vector<SyntheticTensor>* out) {
  out->push_back(LinearTensor(prefix + "gate_proj.weight", width, hidden, num_layers));
  out->push_back(LinearTensor(prefix + "up_proj.weight", width, hidden, num_layers));
  out->push_back(LinearTensor(prefix + "down_proj.weight", hidden, width, num_layers));
}

std::string GiB(int64_t bytes) {
  return absl::StrFormat("%.3f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

absl::StatusOr<std::string> SyntheticConfigJson(const SyntheticOptions& options) {
  ordered_json c;
  if (options.preset == "tiny") {
    c = TinyConfig();
  } else if (options.preset == "tiny-mla") {
    c = TinyMlaConfig();
  } else if (options.preset == "v3") {
    c = V3Config();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("preset: unknown \"", options.preset, "\" (tiny, tiny-mla or v3)"));
  }
  if (options.n_routed_experts < 0 || options.num_layers < 0) {
    return absl::InvalidArgumentError("n_routed_experts and num_layers must be >= 0");
  }
  const int64_t experts = options.n_routed_experts > 0 ? options.n_routed_experts : 8;
  if (options.preset == "v3") {
    const int64_t groups = std::gcd(experts, int64_t{8});
    const int64_t kept = std::max<int64_t>(1, groups / 2);
    c["n_routed_experts"] = experts;
    c["n_group"] = groups;
    c["topk_group"] = kept;
    c["num_experts_per_tok"] = std::min<int64_t>(8, kept * (experts / groups));
  } else {
    c["n_routed_experts"] = experts;
  }
  if (options.num_layers > 0) {
    c["num_hidden_layers"] = options.num_layers;
    const int64_t dense = c["first_k_dense_replace"].get<int64_t>();
    c["first_k_dense_replace"] = std::min(dense, options.num_layers - 1);
  }
  std::string text = c.dump(2) + "\n";
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("preset ", options.preset, " with these overrides: ",
                     parsed.status().message()));
  }
  return text;
}

std::vector<SyntheticTensor> SyntheticTensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size;
  const int64_t L = c.num_hidden_layers;
  std::vector<SyntheticTensor> t;
  t.push_back({{"model.embed_tokens.weight", DType::kBF16, {c.vocab_size, h}}, 0.0f,
               static_cast<float>(std::sqrt(3.0))});
  for (int64_t layer = 0; layer < L; ++layer) {
    const std::string p = absl::StrCat("model.layers.", layer, ".");
    const std::string a = p + "self_attn.";
    t.push_back(NormTensor(p + "input_layernorm.weight", h));
    t.push_back(LinearTensor(a + "q_a_proj.weight", c.q_lora_rank, h, L));
    t.push_back(NormTensor(a + "q_a_layernorm.weight", c.q_lora_rank));
    t.push_back(LinearTensor(a + "q_b_proj.weight", c.num_attention_heads * c.qk_head_dim(),
                             c.q_lora_rank, L));
    t.push_back(LinearTensor(a + "kv_a_proj_with_mqa.weight",
                             c.kv_lora_rank + c.qk_rope_head_dim, h, L));
    t.push_back(NormTensor(a + "kv_a_layernorm.weight", c.kv_lora_rank));
    t.push_back(LinearTensor(a + "kv_b_proj.weight",
                             c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim),
                             c.kv_lora_rank, L));
    t.push_back(LinearTensor(a + "o_proj.weight", h, c.num_attention_heads * c.v_head_dim, L));
    t.push_back(NormTensor(p + "post_attention_layernorm.weight", h));
    if (!c.IsMoeLayer(layer)) {
      AddMlp(p + "mlp.", h, c.intermediate_size, L, &t);
      continue;
    }
    t.push_back(LinearTensor(p + "mlp.gate.weight", c.n_routed_experts, h, L));
    t.push_back({{p + "mlp.gate.e_score_correction_bias", DType::kF32, {c.n_routed_experts}},
                 0.0f, 0.1f});
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      AddMlp(absl::StrCat(p, "mlp.experts.", e, "."), h, c.moe_intermediate_size, L, &t);
    }
    if (c.n_shared_experts > 0) {
      AddMlp(p + "mlp.shared_experts.", h, c.moe_intermediate_size * c.n_shared_experts, L, &t);
    }
  }
  t.push_back(NormTensor("model.norm.weight", h));
  t.push_back(LinearTensor("lm_head.weight", c.vocab_size, h, L));
  return t;
}

uint64_t NameHash(const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char ch : name) {
    hash ^= ch;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

double SyntheticUniform(uint64_t seed, uint64_t name_hash, uint64_t index) {
  const uint64_t key = Finalize(Finalize(seed + kGolden) ^ name_hash);
  const uint64_t bits = Finalize(key + (index + 1) * kGolden);  // SplitMix64 stream of key
  return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53;
}

void FillSynthetic(const SyntheticTensor& tensor, uint64_t seed, int64_t begin, int64_t count,
                   void* out) {
  const uint64_t hash = NameHash(tensor.spec.name);
  for (int64_t i = 0; i < count; ++i) {
    const double u = SyntheticUniform(seed, hash, static_cast<uint64_t>(begin + i));
    const float v = static_cast<float>(tensor.center + tensor.half_width * (2.0 * u - 1.0));
    if (tensor.spec.dtype == DType::kF32) {
      static_cast<float*>(out)[i] = v;
    } else {
      static_cast<bf16*>(out)[i] = FloatToBf16(v);
    }
  }
}

std::vector<int> AssignShards(const std::vector<SyntheticTensor>& tensors, int64_t shard_bytes) {
  std::vector<int> shard(tensors.size());
  int current = 0;
  int64_t used = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = tensors[i].spec.nbytes();
    if (used > 0 && used + n > shard_bytes) {
      ++current;
      used = 0;
    }
    shard[i] = current;
    used += n;
  }
  return shard;
}

namespace {

// Fills a whole tensor using up to `threads` threads.
void FillParallel(const SyntheticTensor& tensor, uint64_t seed, std::byte* out, int threads) {
  const int64_t numel = tensor.spec.nbytes() / DTypeSize(tensor.spec.dtype);
  const int64_t elem = DTypeSize(tensor.spec.dtype);
  const int64_t parts = numel < (int64_t{1} << 20) ? 1 : threads;
  std::vector<std::thread> workers;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t b = numel * p / parts, e = numel * (p + 1) / parts;
    workers.emplace_back([&, b, e] { FillSynthetic(tensor, seed, b, e - b, out + b * elem); });
  }
  for (std::thread& w : workers) w.join();
}

}  // namespace

absl::Status WriteSyntheticCheckpoint(const SyntheticOptions& options, const std::string& dir) {
  MLA_ASSIGN_OR_RETURN(const std::string config_text, SyntheticConfigJson(options));
  MLA_ASSIGN_OR_RETURN(const ModelConfig config, ParseModelConfig(config_text));
  if (!(options.shard_gib > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("shard_gib must be > 0, got ",
                                                   options.shard_gib));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  MLA_RETURN_IF_ERROR(WriteTextFile(dir + "/config.json", config_text));
  BpeTrainerOptions tokenizer_options;
  tokenizer_options.vocab_size = config.vocab_size;
  tokenizer_options.model_max_length = config.max_position_embeddings;
  MLA_RETURN_IF_ERROR(WriteTokenizerFiles(tokenizer_options, dir));

  const std::vector<SyntheticTensor> tensors = SyntheticTensors(config);
  const auto shard_bytes = static_cast<int64_t>(options.shard_gib * 1024.0 * 1024.0 * 1024.0);
  const std::vector<int> shard_of = AssignShards(tensors, std::max<int64_t>(shard_bytes, 1));
  const int num_shards = shard_of.empty() ? 0 : shard_of.back() + 1;
  int64_t total = 0;
  for (const SyntheticTensor& t : tensors) total += t.spec.nbytes();

  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<std::byte> buffer;
  int64_t written = 0;
  auto last_report = std::chrono::steady_clock::now();
  size_t next = 0;
  for (int s = 0; s < num_shards; ++s) {
    const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, num_shards);
    std::vector<TensorSpec> specs;
    const size_t first = next;
    for (size_t i = first; i < tensors.size() && shard_of[i] == s; ++i) {
      specs.push_back(tensors[i].spec);
      weight_map[tensors[i].spec.name] = file;
    }
    MLA_ASSIGN_OR_RETURN(auto writer,
                         SafetensorsWriter::Create(dir + "/" + file, specs, {{"format", "pt"}}));
    for (next = first; next < first + specs.size(); ++next) {
      const SyntheticTensor& t = tensors[next];
      buffer.resize(static_cast<size_t>(t.spec.nbytes()));
      FillParallel(t, options.seed, buffer.data(), threads);
      MLA_RETURN_IF_ERROR(writer->Write(t.spec.name, buffer.data(), buffer.size()));
      written += t.spec.nbytes();
      const auto now = std::chrono::steady_clock::now();
      if (options.progress && now - last_report > std::chrono::seconds(5)) {
        std::fprintf(stderr, "mla-make-checkpoint: %s / %s (%.1f%%), shard %d/%d\n",
                     GiB(written).c_str(), GiB(total).c_str(), 100.0 * written / total, s + 1,
                     num_shards);
        last_report = now;
      }
    }
    MLA_RETURN_IF_ERROR(writer->Finish());
    if (options.progress) {
      std::fprintf(stderr, "mla-make-checkpoint: wrote %s (%zu tensors), %s / %s\n",
                   file.c_str(), specs.size(), GiB(written).c_str(), GiB(total).c_str());
    }
  }
  buffer = {};
  // Shards of an earlier run with another layout would confuse a reader that globs the folder.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("model-", 0) == 0 && EndsWith(name, ".safetensors") &&
        !EndsWith(name, absl::StrFormat("-of-%05d.safetensors", num_shards))) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return WriteTextFile(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace mla::tools
