// Layer forwards (MODEL.md §3 for attention, §5 for the FFNs) as sequences of Backend ops.
#include "worker/layers.h"

#include <cmath>
#include <vector>

#include "worker/status_macros.h"

namespace mla {

absl::StatusOr<AttentionConstants> MakeAttentionConstants(const ModelConfig& c,
                                                          Backend& backend) {
  AttentionConstants k;
  MLA_ASSIGN_OR_RETURN(k.inv_freq, backend.Place(kernels::cpu::YarnInverseFrequencies(c.rope)));
  k.softmax_scale = c.SoftmaxScale();
  // HF scales cos/sin by mscale(factor, mscale) / mscale(factor, mscale_all_dim) (MODEL.md §4.3).
  if (c.rope.factor > 1.0) {
    auto m = [&](double mscale) { return 0.1 * mscale * std::log(c.rope.factor) + 1.0; };
    k.cos_sin_scale = static_cast<float>(m(c.rope.mscale) / m(c.rope.mscale_all_dim));
  }
  return k;
}

absl::Status MlaAttentionForward(const LayerStep& s, const AttentionWeights& w, int64_t heads,
                                 const AttentionConstants& k, const kernels::LatentCache& cache,
                                 const float* x, Partial out) {
  Backend& be = s.backend;
  const ModelConfig& c = s.config;
  const FlatBatch& b = s.batch;
  const int64_t T = b.num_tokens, d = c.hidden_size, qk = c.qk_head_dim();
  const int64_t dc = c.kv_lora_rank, dr = c.qk_rope_head_dim, dn = c.qk_nope_head_dim;
  const int64_t dv = c.v_head_dim;
  const kernels::MlaDims dims = c.MlaDimsForHeads(heads);
  const int32_t* positions = s.index.positions;

  // Query: c_q = RMSNorm(W_qa x); q = W_qb c_q, rope on the last d_rope of each head.
  MLA_ASSIGN_OR_RETURN(float* cq, be.Scratch<float>(T * c.q_lora_rank));
  MLA_ASSIGN_OR_RETURN(float* q, be.Scratch<float>(T * heads * qk));
  MLA_RETURN_IF_ERROR(be.Linear(x, w.q_a.data(), T, d, c.q_lora_rank, cq));
  MLA_RETURN_IF_ERROR(be.RmsNorm(cq, w.q_a_norm.data(), T, c.q_lora_rank, c.rms_norm_eps, cq));
  MLA_RETURN_IF_ERROR(be.Linear(cq, w.q_b.data(), T, c.q_lora_rank, heads * qk, q));
  MLA_RETURN_IF_ERROR(be.ApplyRope(q + dn, T, heads, heads * qk, qk, positions,
                                   k.inv_freq.data(), dr, k.cos_sin_scale));

  // Key/value latent: [c_kv ; k_rope] = W_kva x; c_kv normalised and k_rope rotated on their
  // way into the cache (one fused op).
  MLA_ASSIGN_OR_RETURN(float* kv, be.Scratch<float>(T * (dc + dr)));
  MLA_RETURN_IF_ERROR(be.Linear(x, w.kv_a.data(), T, d, dc + dr, kv));
  MLA_RETURN_IF_ERROR(be.WriteLatentCache({.kv = kv,
                                           .norm_weight = w.kv_a_norm.data(),
                                           .eps = static_cast<float>(c.rms_norm_eps),
                                           .positions = positions,
                                           .inv_freq = k.inv_freq.data(),
                                           .cos_sin_scale = k.cos_sin_scale,
                                           .slots = s.index.slots,
                                           .tokens = T},
                                          cache));

  // Attention: materialised form for prefill rows, absorbed form for decode rows.
  MLA_ASSIGN_OR_RETURN(float* o, be.Scratch<float>(T * heads * dv));
  if (b.prefill_seqs > 0) {
    MLA_RETURN_IF_ERROR(be.MlaPrefillAttention(kernels::MlaPrefillParams{
        .dims = dims,
        .batch = s.index.prefill,
        .cache = cache,
        .q = q,
        .wkv_b = w.kv_b.data(),
        .softmax_scale = k.softmax_scale,
        .out = o}));
  }
  const int64_t Td = T - b.prefill_tokens;
  if (Td > 0) {
    MLA_ASSIGN_OR_RETURN(float* q_abs, be.Scratch<float>(Td * heads * dims.d_cache()));
    MLA_ASSIGN_OR_RETURN(float* o_latent, be.Scratch<float>(Td * heads * dc));
    MLA_RETURN_IF_ERROR(
        be.MlaAbsorbQuery(q + b.prefill_tokens * heads * qk, w.kv_b.data(), Td, dims, q_abs));
    MLA_RETURN_IF_ERROR(be.MlaDecodeAttention(kernels::MlaDecodeParams{
        .dims = dims,
        .batch = s.index.decode,
        .cache = cache,
        .q_abs = q_abs,
        .softmax_scale = k.softmax_scale,
        .out_latent = o_latent,
        .lse = nullptr}));
    MLA_RETURN_IF_ERROR(be.MlaUnabsorbOutput(o_latent, w.kv_b.data(), Td, dims,
                                             o + b.prefill_tokens * heads * dv));
  }
  // u = W_o [o_1; ...; o_heads] (this rank's head columns: a partial sum).
  return be.Linear(o, w.o.data(), T, heads * dv, d, out);
}

namespace {

// Out: float* for a whole (routed) expert, Partial for a row-parallel slice.
template <typename Out>
absl::Status MlpForwardInto(Backend& be, const MlpWeights& w, int64_t hidden, const float* x,
                            int64_t rows, Out out) {
  MLA_ASSIGN_OR_RETURN(float* gate, be.Scratch<float>(rows * w.width));
  MLA_ASSIGN_OR_RETURN(float* up, be.Scratch<float>(rows * w.width));
  MLA_RETURN_IF_ERROR(be.Linear(x, w.gate.data(), rows, hidden, w.width, gate));
  MLA_RETURN_IF_ERROR(be.Linear(x, w.up.data(), rows, hidden, w.width, up));
  MLA_RETURN_IF_ERROR(be.SiluMul(gate, up, rows * w.width, gate));
  return be.Linear(gate, w.down.data(), rows, w.width, hidden, out);
}

}  // namespace

absl::Status MlpForward(Backend& be, const MlpWeights& w, int64_t hidden, const float* x,
                        int64_t rows, Partial out) {
  return MlpForwardInto(be, w, hidden, x, rows, out);
}

absl::Status MoeForward(Backend& be, const MoeWeights& w, const ModelConfig& c, const float* x,
                        int64_t rows, RoutingTrace* trace, Partial out) {
  const int64_t d = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  // Routing, replicated on every rank.
  MLA_ASSIGN_OR_RETURN(float* logits, be.Scratch<float>(rows * E));
  MLA_ASSIGN_OR_RETURN(float* weights, be.Scratch<float>(rows * k));
  MLA_ASSIGN_OR_RETURN(int32_t* ids, be.Scratch<int32_t>(rows * k));
  MLA_ASSIGN_OR_RETURN(int32_t* offsets, be.Scratch<int32_t>(E + 1));
  MLA_ASSIGN_OR_RETURN(int32_t* pairs, be.Scratch<int32_t>(rows * k));
  MLA_RETURN_IF_ERROR(be.LinearF32(x, w.router, rows, d, E, logits));
  MLA_RETURN_IF_ERROR(
      be.MoeGate(logits, w.router_bias.data(), rows, c.Routing(), ids, weights));
  if (trace != nullptr) {
    MLA_RETURN_IF_ERROR(TraceRouting(be, *trace, logits, rows, c.Routing(), ids, weights));
  }
  MLA_RETURN_IF_ERROR(be.MoeDispatch(ids, rows, k, E, offsets, pairs));

  // Shared expert (weight 1), then this rank's routed experts, each on its gathered rows.
  if (w.shared) {
    MLA_RETURN_IF_ERROR(MlpForward(be, *w.shared, d, x, rows, out));
  } else {
    MLA_RETURN_IF_ERROR(be.ZeroPartial(out));
  }
  if (w.experts.empty()) return absl::OkStatus();
  MoeExpertsArgs args{.x = x,
                      .rows = rows,
                      .top_k = k,
                      .expert_offsets = offsets,
                      .sorted_pairs = pairs,
                      .weights = weights,
                      .expert_begin = w.expert_begin,
                      .experts_owner = w.experts.front().gate.owner(),
                      .hidden = d,
                      .width = w.experts.front().width};
  args.experts.reserve(w.experts.size());
  for (const MlpWeights& e : w.experts) {
    args.experts.push_back(
        ExpertWeights{.gate = e.gate.data(), .up = e.up.data(), .down = e.down.data()});
  }
  MLA_ASSIGN_OR_RETURN(const bool grouped, be.GroupedMoeExperts(args, out));
  if (grouped) return absl::OkStatus();
  // The loop: the expert sizes decide the GEMM shapes, so read them on the host.
  std::vector<int32_t> host_offsets(E + 1);
  MLA_RETURN_IF_ERROR(be.CopyToHost(offsets, (E + 1) * sizeof(int32_t), host_offsets.data()));
  for (int64_t i = 0; i < static_cast<int64_t>(w.experts.size()); ++i) {
    const int64_t e = w.expert_begin + i;
    const int64_t begin = host_offsets[e], count = host_offsets[e + 1] - host_offsets[e];
    if (count == 0) continue;
    MLA_ASSIGN_OR_RETURN(float* xs, be.Scratch<float>(count * d));
    MLA_ASSIGN_OR_RETURN(float* ys, be.Scratch<float>(count * d));
    MLA_RETURN_IF_ERROR(be.GatherRows(x, pairs + begin, count, k, d, xs));
    MLA_RETURN_IF_ERROR(MlpForwardInto(be, w.experts[i], d, xs, count, ys));
    MLA_RETURN_IF_ERROR(be.MoeCombine(ys, pairs + begin, weights, count, rows, k, d, out));
  }
  return absl::OkStatus();
}

}  // namespace mla
