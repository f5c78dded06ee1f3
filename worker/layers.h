// The three layer kinds of the forward pass, written once as calls of Backend ops: MLA
// attention, the dense SwiGLU MLP and the DeepSeek MoE. Each computes this rank's partial output
// for all rows of the step into a Partial (backend.h); the caller sums the partials over the
// tensor-parallel group and rounds to float once. The attention also writes the step's latents
// into the cache before it reads them. Every pointer is in the backend's memory; the FlatBatch
// is the step's host copy (sizes), StepIndex its arrays in the backend.
#ifndef MLASERVE_WORKER_LAYERS_H_
#define MLASERVE_WORKER_LAYERS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/mla_params.h"
#include "worker/backend.h"
#include "worker/flat_batch.h"
#include "worker/model_config.h"
#include "worker/model_weights.h"
#include "worker/routing_trace.h"

namespace mla {

// Step-constant inputs of the attention: rope frequencies (in the backend) and scales.
struct AttentionConstants {
  Array<float> inv_freq;  // [d_rope / 2]
  float cos_sin_scale = 1.0f;
  float softmax_scale = 0.0f;
};
absl::StatusOr<AttentionConstants> MakeAttentionConstants(const ModelConfig& config,
                                                          Backend& backend);

// What every layer of one step reads.
struct LayerStep {
  Backend& backend;
  const ModelConfig& config;
  const FlatBatch& batch;
  const StepIndex& index;
  RoutingTrace* routing = nullptr;  // ForwardOptions::routing
};

// x: [num_tokens, hidden] (attention-normed), out: [num_tokens, hidden] partial.
absl::Status MlaAttentionForward(const LayerStep& s, const AttentionWeights& w, int64_t heads,
                                 const AttentionConstants& k, const kernels::LatentCache& cache,
                                 const float* x, Partial out);

// x: [rows, hidden], out: [rows, hidden] partial (overwritten).
absl::Status MlpForward(Backend& backend, const MlpWeights& w, int64_t hidden, const float* x,
                        int64_t rows, Partial out);

// Routing on every rank, this rank's experts, plus this rank's part of the shared expert. The
// gate's choice is recorded into or replaced from `trace` when not null (routing_trace.h).
absl::Status MoeForward(Backend& backend, const MoeWeights& w, const ModelConfig& config,
                        const float* x, int64_t rows, RoutingTrace* trace, Partial out);

}  // namespace mla

#endif  // MLASERVE_WORKER_LAYERS_H_
