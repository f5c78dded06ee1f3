// mla-make-checkpoint: writes a synthetic DeepSeek-V3 checkpoint (tools/synthetic_checkpoint.h).
//
//   mla-make-checkpoint --preset=tiny --seed=1 --out=/tmp/tiny
//   mla-make-checkpoint --preset=v3 --n_routed_experts=8 --num_layers=4 --out=/data/v3-l4
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "tools/synthetic_checkpoint.h"

ABSL_FLAG(std::string, preset, "tiny", "tiny (CPU tests), tiny-mla (tiny with V3's MLA head dims: GPU tests) or v3 (DeepSeek-V3's shape)");
ABSL_FLAG(uint64_t, seed, 0, "weights are a deterministic function of the seed");
ABSL_FLAG(std::string, out, "", "output directory (created if needed)");
ABSL_FLAG(int64_t, n_routed_experts, 0, "routed experts per MoE layer; 0 = preset default (8)");
ABSL_FLAG(int64_t, num_layers, 0, "override num_hidden_layers; 0 = preset default");
ABSL_FLAG(double, shard_gib, 4.0, "maximum size of one safetensors shard in GiB");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  mla::tools::SyntheticOptions options;
  options.preset = absl::GetFlag(FLAGS_preset);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.n_routed_experts = absl::GetFlag(FLAGS_n_routed_experts);
  options.num_layers = absl::GetFlag(FLAGS_num_layers);
  options.shard_gib = absl::GetFlag(FLAGS_shard_gib);
  options.progress = true;
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "mla-make-checkpoint: --out is required\n");
    return 2;
  }
  absl::Status status = mla::tools::WriteSyntheticCheckpoint(options, out);
  if (!status.ok()) {
    std::fprintf(stderr, "mla-make-checkpoint: %s\n", status.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "mla-make-checkpoint: wrote %s\n", out.c_str());
  return 0;
}
