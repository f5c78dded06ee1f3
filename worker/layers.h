// The three layer kinds of the forward pass on the CPU ops: MLA attention, the dense SwiGLU MLP
// and the DeepSeek MoE. Each computes this rank's partial output for all rows of the step, in
// float64 (see the float64 ops::Linear); the caller sums the partial outputs over the
// tensor-parallel group and rounds to float once. Pure functions of their arguments (the
// attention also writes the step's latents into the cache); any thread.
#ifndef MLASERVE_WORKER_LAYERS_H_
#define MLASERVE_WORKER_LAYERS_H_

#include <cstdint>
#include <vector>

#include "kernels/mla_params.h"
#include "worker/flat_batch.h"
#include "worker/model_config.h"
#include "worker/model_weights.h"

namespace mla {

// Step-constant inputs of the attention: rope frequencies and scales.
struct AttentionConstants {
  std::vector<float> inv_freq;  // [d_rope / 2]
  float cos_sin_scale = 1.0f;
  float softmax_scale = 0.0f;
};
AttentionConstants MakeAttentionConstants(const ModelConfig& config);

// x: [num_tokens, hidden] (attention-normed), out: [num_tokens, hidden].
void MlaAttentionForward(const AttentionWeights& w, const ModelConfig& config, int64_t heads,
                         const AttentionConstants& k, const FlatBatch& batch,
                         kernels::LatentCache cache, const float* x, double* out);

// x: [rows, hidden], out: [rows, hidden] (overwritten). Out is float for a whole (routed)
// expert, double for a row-parallel slice.
void MlpForward(const MlpWeights& w, int64_t hidden, const float* x, int64_t rows, float* out);
void MlpForward(const MlpWeights& w, int64_t hidden, const float* x, int64_t rows, double* out);

// Routing on every rank, this rank's experts, plus this rank's part of the shared expert.
void MoeForward(const MoeWeights& w, const ModelConfig& config, const float* x, int64_t rows,
                double* out);

}  // namespace mla

#endif  // MLASERVE_WORKER_LAYERS_H_
