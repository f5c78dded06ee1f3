// Layer forwards (MODEL.md §3 for attention, §5 for the FFNs), written as calls of the ops in
// kernels/ops.h so that the same sequence of ops runs on every backend.
#include "worker/layers.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace mla {

namespace ops = kernels::cpu;

AttentionConstants MakeAttentionConstants(const ModelConfig& c) {
  AttentionConstants k;
  k.inv_freq = ops::YarnInverseFrequencies(c.rope);
  k.softmax_scale = c.SoftmaxScale();
  // HF scales cos/sin by mscale(factor, mscale) / mscale(factor, mscale_all_dim) (MODEL.md §4.3).
  if (c.rope.factor > 1.0) {
    auto m = [&](double mscale) { return 0.1 * mscale * std::log(c.rope.factor) + 1.0; };
    k.cos_sin_scale = static_cast<float>(m(c.rope.mscale) / m(c.rope.mscale_all_dim));
  }
  return k;
}

void MlaAttentionForward(const AttentionWeights& w, const ModelConfig& c, int64_t heads,
                         const AttentionConstants& k, const FlatBatch& b,
                         kernels::LatentCache cache, const float* x, double* out) {
  const int64_t T = b.num_tokens, d = c.hidden_size, qk = c.qk_head_dim();
  const int64_t dc = c.kv_lora_rank, dr = c.qk_rope_head_dim, dn = c.qk_nope_head_dim;
  const kernels::MlaDims dims = c.MlaDimsForHeads(heads);

  // Query: c_q = RMSNorm(W_qa x); q = W_qb c_q, rope on the last d_rope of each head.
  std::vector<float> cq(T * c.q_lora_rank), q(T * heads * qk);
  ops::Linear(x, w.q_a.data(), T, d, c.q_lora_rank, cq.data());
  ops::RmsNorm(cq.data(), w.q_a_norm.data(), T, c.q_lora_rank, c.rms_norm_eps, cq.data());
  ops::Linear(cq.data(), w.q_b.data(), T, c.q_lora_rank, heads * qk, q.data());
  ops::ApplyRope(q.data() + dn, T, heads, heads * qk, qk, b.positions.data(), k.inv_freq.data(),
                 dr, k.cos_sin_scale);

  // Key/value latent: [c_kv ; k_rope] = W_kva x; c_kv normalised, k_rope rotated; cached.
  std::vector<float> kv(T * (dc + dr)), latent(T * dc), k_rope(T * dr);
  ops::Linear(x, w.kv_a.data(), T, d, dc + dr, kv.data());
  for (int64_t t = 0; t < T; ++t) {
    std::copy_n(kv.data() + t * (dc + dr), dc, latent.data() + t * dc);
    std::copy_n(kv.data() + t * (dc + dr) + dc, dr, k_rope.data() + t * dr);
  }
  ops::RmsNorm(latent.data(), w.kv_a_norm.data(), T, dc, c.rms_norm_eps, latent.data());
  ops::ApplyRope(k_rope.data(), T, 1, dr, dr, b.positions.data(), k.inv_freq.data(), dr,
                 k.cos_sin_scale);
  ops::WriteLatentCache(latent.data(), k_rope.data(), b.slots.data(), T, cache);

  // Attention: materialised form for prefill rows, absorbed form for decode rows.
  std::vector<float> o(T * heads * c.v_head_dim);
  if (b.prefill_seqs > 0) {
    ops::MlaPrefillAttention(kernels::MlaPrefillParams{.dims = dims,
                                                       .batch = b.Prefill(),
                                                       .cache = cache,
                                                       .q = q.data(),
                                                       .wkv_b = w.kv_b.data(),
                                                       .softmax_scale = k.softmax_scale,
                                                       .out = o.data()});
  }
  const int64_t Td = T - b.prefill_tokens;
  if (Td > 0) {
    std::vector<float> q_abs(Td * heads * dims.d_cache()), o_latent(Td * heads * dc);
    ops::MlaAbsorbQuery(q.data() + b.prefill_tokens * heads * qk, w.kv_b.data(), Td, dims,
                        q_abs.data());
    ops::MlaDecodeAttention(kernels::MlaDecodeParams{.dims = dims,
                                                     .batch = b.Decode(),
                                                     .cache = cache,
                                                     .q_abs = q_abs.data(),
                                                     .softmax_scale = k.softmax_scale,
                                                     .out_latent = o_latent.data(),
                                                     .lse = nullptr});
    ops::MlaUnabsorbOutput(o_latent.data(), w.kv_b.data(), Td, dims,
                           o.data() + b.prefill_tokens * heads * c.v_head_dim);
  }
  // u = W_o [o_1; ...; o_heads] (this rank's head columns: a partial sum).
  ops::Linear(o.data(), w.o.data(), T, heads * c.v_head_dim, d, out);
}

namespace {

template <typename Out>
void MlpForwardImpl(const MlpWeights& w, int64_t hidden, const float* x, int64_t rows, Out* out) {
  std::vector<float> gate(rows * w.width), up(rows * w.width);
  ops::Linear(x, w.gate.data(), rows, hidden, w.width, gate.data());
  ops::Linear(x, w.up.data(), rows, hidden, w.width, up.data());
  ops::SiluMul(gate.data(), up.data(), rows * w.width, gate.data());
  ops::Linear(gate.data(), w.down.data(), rows, w.width, hidden, out);
}

}  // namespace

void MlpForward(const MlpWeights& w, int64_t hidden, const float* x, int64_t rows, float* out) {
  MlpForwardImpl(w, hidden, x, rows, out);
}

void MlpForward(const MlpWeights& w, int64_t hidden, const float* x, int64_t rows, double* out) {
  MlpForwardImpl(w, hidden, x, rows, out);
}

void MoeForward(const MoeWeights& w, const ModelConfig& c, const float* x, int64_t rows,
                double* out) {
  const int64_t d = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  // Routing, replicated on every rank.
  std::vector<float> logits(rows * E), weights(rows * k);
  std::vector<int32_t> ids(rows * k), offsets(E + 1), pairs(rows * k);
  ops::Linear(x, w.router.data(), rows, d, E, logits.data());
  ops::MoeGate(logits.data(), w.router_bias.data(), rows, c.Routing(), ids.data(),
               weights.data());
  ops::MoeDispatch(ids.data(), rows, k, E, offsets.data(), pairs.data());

  // Shared expert (weight 1), then this rank's routed experts, each on its gathered rows.
  if (w.shared) {
    MlpForward(*w.shared, d, x, rows, out);
  } else {
    std::fill_n(out, rows * d, 0.0);
  }
  std::vector<float> xs, ys;
  for (int64_t i = 0; i < static_cast<int64_t>(w.experts.size()); ++i) {
    const int64_t e = w.expert_begin + i;
    const int64_t begin = offsets[e], count = offsets[e + 1] - offsets[e];
    if (count == 0) continue;
    xs.resize(count * d);
    ys.resize(count * d);
    for (int64_t j = 0; j < count; ++j) {
      std::copy_n(x + (pairs[begin + j] / k) * d, d, xs.data() + j * d);
    }
    MlpForward(w.experts[i], d, xs.data(), count, ys.data());
    ops::MoeCombine(ys.data(), pairs.data() + begin, weights.data(), count, k, d, out);
  }
}

}  // namespace mla
