// Generate: the in-process generation loop over one Model, used by tests and mla-generate.
//
// Runs several requests together, one step at a time: each unfinished request contributes its
// next prompt chunk (prefill_chunk tokens, or the whole prompt when 0) or its one decode token.
// The cache is private to the call, and the requests' blocks interleave so that every block table
// is non-contiguous. Stops a request at max_tokens or at EOS (unless ignore_eos).
#ifndef MLASERVE_WORKER_GENERATOR_H_
#define MLASERVE_WORKER_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"
#include "worker/model.h"

namespace mla {

struct GenerateRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  kernels::SamplingParams sampling;  // greedy by default
  bool ignore_eos = false;
};

struct GenerateOptions {
  int64_t prefill_chunk = 0;  // tokens per prefill step; 0 = the whole prompt in one step
  bool keep_logits = false;   // keep the logits each token was sampled from
  bool step_graphs = true;    // ForwardOptions::step_graphs
  RoutingTrace* routing = nullptr;  // ForwardOptions::routing
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens
  std::vector<float> logits;    // [tokens.size(), vocab] when keep_logits
};

struct GenerateStats {
  int64_t steps = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double seconds = 0.0;
};

// InvalidArgument for an empty prompt or max_tokens < 1 (or what Model::Forward rejects).
absl::StatusOr<std::vector<GenerateResult>> Generate(Model& model,
                                                     const std::vector<GenerateRequest>& requests,
                                                     const GenerateOptions& options = {},
                                                     GenerateStats* stats = nullptr);

// The same loop over any executor of steps (e.g. a group of model shards): `run` executes one
// step on a cache of at least GenerationBlocks(requests) blocks and returns the sampled tokens.
using StepRunner = std::function<absl::StatusOr<StepOutput>(const StepBatch&)>;
int64_t GenerationBlocks(const std::vector<GenerateRequest>& requests);
absl::StatusOr<std::vector<GenerateResult>> RunGeneration(
    const ModelConfig& config, const std::vector<GenerateRequest>& requests,
    const GenerateOptions& options, const StepRunner& run, GenerateStats* stats = nullptr);

}  // namespace mla

#endif  // MLASERVE_WORKER_GENERATOR_H_
