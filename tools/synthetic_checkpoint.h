// Synthetic checkpoints: a Hugging Face DeepSeek-V3 model directory (config.json, sharded
// safetensors, model.safetensors.index.json) with deterministic pseudo-random bf16 weights, for
// tests and benchmarks where real weights cannot be downloaded.
//
// Names, shapes and dtypes are DeepSeek-V3's (MODEL.md §6.3) for the main model (no MTP layer):
// every weight bf16, the router bias e_score_correction_bias float32. Element i of tensor `name`
// is a pure function of (seed, FNV-1a hash of name, i), so values do not depend on the sharding
// and can be produced in any chunking. Scales keep activations finite and non-degenerate through
// all layers: linear weights uniform with std 1/sqrt(fan_in), output projections (o_proj,
// down_proj) further scaled by 1/sqrt(2 * num_layers), norm weights 1 +- 0.05, embedding std 1,
// router weight std 1/sqrt(hidden), router bias +-0.1.
//
// Presets: "tiny" (CPU tests, a few MB), "tiny-mla" (tiny with V3's MLA head dims, for the GPU
// kernels) and "v3" (DeepSeek-V3's config; the routed-expert count
// defaults to 8 so the full 61-layer shape fits a GPU or two). With fewer than 256 experts the v3
// preset keeps group-limited routing valid: n_group = gcd(8, E), topk_group = max(1, n_group/2),
// num_experts_per_tok = min(8, topk_group * E / n_group) (E = 256 gives V3's 8 / 4 / 8). A
// num_layers override keeps first_k_dense_replace <= num_layers - 1, so at least one layer is MoE.
//
// Functions are pure except WriteSyntheticCheckpoint, which writes into `dir` (created if
// needed; existing files of the same names are replaced). Any thread may call them.
#ifndef MLASERVE_TOOLS_SYNTHETIC_CHECKPOINT_H_
#define MLASERVE_TOOLS_SYNTHETIC_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/model_config.h"
#include "worker/safetensors.h"

namespace mla::tools {

struct SyntheticOptions {
  std::string preset = "tiny";     // "tiny", "tiny-mla" (GPU tests) or "v3"
  uint64_t seed = 0;               // weights are a function of the seed
  int64_t n_routed_experts = 0;    // 0 = preset default (8 for both presets)
  int64_t num_layers = 0;          // 0 = preset default (tiny 4, v3 61)
  double shard_gib = 4.0;          // a shard holds at most this much (a bigger tensor: alone)
  bool progress = false;           // print progress lines to stderr
};

// The config.json text of the preset with the overrides applied; InvalidArgument for an unknown
// preset or an override that makes the config invalid (checked with ParseModelConfig).
absl::StatusOr<std::string> SyntheticConfigJson(const SyntheticOptions& options);

// How a tensor's values are drawn: uniform in [center - half_width, center + half_width],
// then rounded to the tensor's dtype.
struct SyntheticTensor {
  TensorSpec spec;
  float center = 0.0f;
  float half_width = 0.0f;
};

// Every tensor of the main model in file order: embedding, layers 0..L-1 (attention, norms,
// dense MLP or router + experts + shared experts), final norm, lm_head.
std::vector<SyntheticTensor> SyntheticTensors(const ModelConfig& config);

// The uniform number in [0, 1) for element `index` of a tensor with `name_hash`.
double SyntheticUniform(uint64_t seed, uint64_t name_hash, uint64_t index);
// 64-bit FNV-1a of the name.
uint64_t NameHash(const std::string& name);

// Writes elements [begin, begin + count) of the tensor, in its dtype, to `out`
// (count * DTypeSize bytes). REQUIRES: dtype is BF16 or F32.
void FillSynthetic(const SyntheticTensor& tensor, uint64_t seed, int64_t begin, int64_t count,
                   void* out);

// Groups tensors (in order) into shards of at most shard_bytes each; returns the shard index
// of every tensor.
std::vector<int> AssignShards(const std::vector<SyntheticTensor>& tensors, int64_t shard_bytes);

// Writes config.json, model-0000i-of-0000N.safetensors and model.safetensors.index.json, and
// tokenizer.json + tokenizer_config.json trained to the config's vocab_size (tools/bpe_trainer.h).
absl::Status WriteSyntheticCheckpoint(const SyntheticOptions& options, const std::string& dir);

}  // namespace mla::tools

#endif  // MLASERVE_TOOLS_SYNTHETIC_CHECKPOINT_H_
