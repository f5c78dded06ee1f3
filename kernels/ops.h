// The operations of the DeepSeek-V3 forward pass: one contract for every backend.
//
// kernels::cpu holds the reference implementations; every GPU op (kernels::cuda, same names)
// is tested against its twin here. Conventions for every function:
// - Activations are float32, row-major, rows = tokens. Weights are bf16 in PyTorch's [out, in]
//   layout; norm weights are float32 (converted once at load). Accumulation is float32.
// - Sizes are int64_t element counts; pointers are never null unless a comment says so; outputs
//   must not alias inputs unless a comment says so. Functions are pure: no globals, no threads
//   of their own; any thread may call them.
// - Preconditions are the caller's (the worker validates shapes); these functions do not check.
#ifndef MLASERVE_KERNELS_OPS_H_
#define MLASERVE_KERNELS_OPS_H_

#include <cstdint>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/mla_params.h"

namespace mla::kernels {

// YaRN rotary parameters (MODEL.md §4). factor <= 1 means plain RoPE.
struct RopeConfig {
  int64_t rope_dim = 64;                  // d_r, even
  double theta = 10000.0;                 // rope_theta
  double factor = 1.0;                    // rope_scaling.factor (s)
  int64_t original_max_position = 4096;   // rope_scaling.original_max_position_embeddings (L0)
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;                    // rope_scaling.mscale
  double mscale_all_dim = 1.0;            // rope_scaling.mscale_all_dim
};

// Group-limited, bias-corrected sigmoid routing (MODEL.md §5.2, topk_method "noaux_tc").
struct MoeRouting {
  int64_t num_experts = 0;        // n_routed_experts (E)
  int64_t top_k = 0;              // num_experts_per_tok
  int64_t num_groups = 1;         // n_group; E % num_groups == 0
  int64_t topk_groups = 1;        // topk_group <= num_groups
  float routed_scaling_factor = 1.0f;
  bool norm_topk_prob = true;
};

// Per-request sampling. temperature == 0 means greedy (argmax, lowest id on ties).
struct SamplingParams {
  float temperature = 0.0f;  // >= 0
  int32_t top_k = 0;         // 0 = no limit
  float top_p = 1.0f;        // in (0, 1]
  uint64_t seed = 0;
};

namespace cpu {

// y[r, o] = sum_i x[r, i] * w[o, i].  x: [rows, in], w: [out, in] bf16, y: [rows, out].
void Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out, float* y);
// The same, accumulated in float64 (each product exact). The CPU model computes the partial
// outputs of row-parallel layers this way: summed over a tensor-parallel group in float64 and
// rounded to float once, they give one rank's float result whatever the partition (up to float64
// rounding), so tp x pp layouts produce the same tokens as one rank. CPU reference only.
void Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out, double* y);

// y[r] = weight * x[r] / sqrt(mean(x[r]^2) + eps).  x, y: [rows, dim]; y may alias x.
void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

// residual[r] += delta[r]; y[r] = RmsNorm(residual[r]).  The GPU fuses the two; same result.
void AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows,
                int64_t dim, float eps, float* y);

// The rope_dim/2 YaRN inverse frequencies w'_i (MODEL.md §4.2), computed in double, stored float.
std::vector<float> YarnInverseFrequencies(const RopeConfig& config);

// Attention softmax scale: qk_head_dim^-0.5 * m^2, m = 0.1 * mscale_all_dim * ln(factor) + 1
// when factor > 1 (MODEL.md §3.4).
float SoftmaxScale(const RopeConfig& config, int64_t qk_head_dim);

// Rotates, in place, `heads` vectors of rope_dim values per row by the row's position, in
// DeepSeek's interleaved-pair layout: (x[2i], x[2i+1]) turns by angle positions[r] * inv_freq[i]
// computed in float32. The vector of (row r, head h) starts at x + r*row_stride + h*head_stride.
// The YaRN cos/sin factor mscale/mscale_all_dim (1.0 for V3) multiplies both outputs.
void ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride, int64_t head_stride,
               const int32_t* positions, const float* inv_freq, int64_t rope_dim,
               float cos_sin_scale);

// out[i] = silu(gate[i]) * up[i] for i < n (SwiGLU's elementwise part).
void SiluMul(const float* gate, const float* up, int64_t n, float* out);

// Router: scores s = sigmoid(logits) in float32; choice by s + bias within the topk_groups
// groups whose two best biased scores sum highest (other groups' experts excluded, -inf fill);
// weights = s of the chosen experts, normalised over them when norm_topk_prob, times
// routed_scaling_factor. logits: [tokens, E], bias: [E] (may be null = zeros),
// expert_ids / weights: [tokens, top_k], ordered by biased score descending (ties: lower id).
void MoeGate(const float* logits, const float* bias, int64_t tokens, const MoeRouting& routing,
             int32_t* expert_ids, float* weights);

// MoeGate's weights for the experts expert_ids [tokens, top_k] (its own choice, or one forced on
// it: a routing replay, worker/routing_trace.h): s_e = sigmoid(logit_e) of each, normalised
// over the token's top_k when norm_topk_prob, times routed_scaling_factor; float32, in the
// order of expert_ids. MoeGate computes its weights with it.
void MoeGateWeights(const float* logits, const int32_t* expert_ids, int64_t tokens,
                    const MoeRouting& routing, float* weights);

// Groups the tokens*top_k (token, choice) pairs by expert: expert_offsets [num_experts + 1]
// (CSR), sorted_pairs [tokens*top_k] holding pair index token*top_k + choice, stable (ascending
// pair index within an expert).
void MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k, int64_t num_experts,
                 int32_t* expert_offsets, int32_t* sorted_pairs);

// out[pair / top_k] += weights[pair] * expert_out[j] for j < count, pair = sorted_pairs[j].
// expert_out: [count, dim] in sorted order, weights: [tokens, top_k] (MoeGate's), out: [tokens,
// dim] (accumulated into).
void MoeCombine(const float* expert_out, const int32_t* sorted_pairs, const float* weights,
                int64_t count, int64_t top_k, int64_t dim, float* out);
// The same into float64 accumulators (see the float64 Linear). CPU reference only.
void MoeCombine(const float* expert_out, const int32_t* sorted_pairs, const float* weights,
                int64_t count, int64_t top_k, int64_t dim, double* out);

// out[t] = table[ids[t] - vocab_begin] for ids in [vocab_begin, vocab_end), else zeros
// (vocab-parallel: the all-reduce of the shards gives the full lookup). table: [vocab_end -
// vocab_begin, dim] bf16.
void Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
           int64_t vocab_begin, int64_t vocab_end, float* out);

// Draws one token from logits [vocab]. Deterministic in (logits, params, step): the uniform
// number comes from a counter-based hash of (params.seed, step), never from shared state, so a
// request's tokens do not depend on what else is in the batch. Greedy when temperature == 0;
// else softmax(logits / temperature) restricted to the top_k most likely (if top_k > 0), then to
// the smallest prefix by descending probability whose mass reaches top_p; renormalised.
int32_t Sample(const float* logits, int64_t vocab, const SamplingParams& params, uint64_t step);

// The uniform number in [0, 1) that Sample uses for (seed, step).
double SampleUniform(uint64_t seed, uint64_t step);

// ---- Multi-head latent attention over the paged latent cache (kernels/mla_params.h) ----

// Writes each token's key/value latent into its cache slot (slot = block * kBlockSize + offset),
// MODEL.md §3.3 step 3, from the projection kv = W_kva x (mla_params.h LatentWrite):
//   cache[slot, 0:d_latent]        = bf16(RmsNorm(kv[t, 0:d_latent]))          (c_t)
//   cache[slot, d_latent:+d_rope]  = bf16(ApplyRope(kv[t, d_latent:], pos[t]))  (k^R_t)
// with RmsNorm's and ApplyRope's float32 arithmetic (the GPU fuses the three; the same result
// up to RmsNorm's summation order). A negative slot is skipped (a padding row).
void WriteLatentCache(const LatentWrite& in, const LatentCache& cache);

// Materialised (prefill) form, MODEL.md §3.2 steps 6-8: per head, keys [W_UK c ; k_rope] and
// values W_UV c up-projected from the cached latent, causal softmax in float32.
void MlaPrefillAttention(const MlaPrefillParams& params);

// Absorbs W_UK into the query (MODEL.md §3.3 step 2): q_abs[t, h] = [W_UK_h^T q_nope[t, h] ;
// q_rope[t, h]]. q: [tokens, heads, d_nope + d_rope], q_abs: [tokens, heads, d_latent + d_rope],
// wkv_b: [heads * (d_nope + d_v), d_latent] bf16 (this rank's heads).
void MlaAbsorbQuery(const float* q, const bf16* wkv_b, int64_t tokens, const MlaDims& dims,
                    float* q_abs);

// Absorbed (decode) attention, MODEL.md §3.3 steps 4-5: MQA of q_abs against the cached 576-wide
// keys; the value is the latent part of the key.
void MlaDecodeAttention(const MlaDecodeParams& params);

// Un-absorbs the value (MODEL.md §3.3 step 6): out[t, h] = W_UV_h latent_out[t, h].
// latent_out: [tokens, heads, d_latent], out: [tokens, heads, d_v].
void MlaUnabsorbOutput(const float* latent_out, const bf16* wkv_b, int64_t tokens,
                       const MlaDims& dims, float* out);

}  // namespace cpu
}  // namespace mla::kernels

#endif  // MLASERVE_KERNELS_OPS_H_
