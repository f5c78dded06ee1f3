// mla_ops_bench's MoE and sampling cases (ops_bench.h): MoeGate with V3's routing (256 experts,
// top-8, 8 groups keeping 4, sigmoid, bias, scale 2.5), MoeDispatch and MoeCombine over random
// routings (8 distinct experts per token, uniform), the grouped experts (MoeGroupedGateUp,
// MoeGroupedDown: all 256 experts local, a strided routing that spreads the rows evenly), and
// Sample over [64, 129280] logits, greedy and top-p (temperature 1, top_p 0.9, no top_k).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/ops_bench.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/cuda/moe/moe_grouped.h"
#include "kernels/cuda/sample/sample.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda::bench {
namespace {

// `copies` routings of `tokens` tokens: 8 distinct expert ids per token drawn uniformly.
std::vector<int32_t> RandomExpertIds(int64_t copies, int64_t tokens) {
  std::vector<int32_t> ids(copies * tokens * kTopK);
  uint64_t state = 11;
  for (int64_t t = 0; t < copies * tokens; ++t) {
    for (int64_t c = 0; c < kTopK; ++c) {
      int32_t id;
      do {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        id = static_cast<int32_t>((state >> 33) % kExperts);
      } while (std::find(&ids[t * kTopK], &ids[t * kTopK + c], id) != &ids[t * kTopK + c]);
      ids[t * kTopK + c] = id;
    }
  }
  return ids;
}

// One routing's pairs grouped by expert: cpu::MoeDispatch's CSR offsets [257] and pairs.
struct Dispatched {
  std::vector<int32_t> offsets, pairs;
};
Dispatched Dispatch(const int32_t* ids, int64_t tokens) {
  Dispatched d{.offsets = std::vector<int32_t>(kExperts + 1),
               .pairs = std::vector<int32_t>(tokens * kTopK)};
  cpu::MoeDispatch(ids, tokens, kTopK, kExperts, d.offsets.data(), d.pairs.data());
  return d;
}

// Token t's choice c is expert (8t + c) % 256 (ops_torch_cases.py: grouped_routing): the rows
// spread evenly, so from T = 32 on every expert has rows and all weights are read (T = 64: 2 rows
// each, T = 1: 8 experts of 1 row).
std::vector<int32_t> StridedExpertIds(int64_t tokens) {
  std::vector<int32_t> ids(tokens * kTopK);
  for (int64_t p = 0; p < tokens * kTopK; ++p) ids[p] = static_cast<int32_t>(p % kExperts);
  return ids;
}

// One grouped case's tensors: the experts' matrices once (GBs; rotating copies would not fit and
// would not change what is read), the routing once, the activations per copy.
struct GroupedState {
  DeviceBuffer<bf16> w0, w1;                   // [256, out, in]: gate and up, or down
  DeviceBuffer<const bf16*> w0_ptrs, w1_ptrs;  // [256] into them
  DeviceBuffer<int32_t> offsets, pairs;        // [257], [T * 8]
  DeviceBuffer<float> in, out;                 // per copy: x or act, and act or y
};

// `mats` matrices of [out, in] per expert in st.w0 (and st.w1), with their pointer arrays, and
// the strided routing of `tokens`.
absl::Status AllocGrouped(GroupedState& st, int mats, int64_t out, int64_t in, int64_t tokens) {
  for (int m = 0; m < mats; ++m) {
    DeviceBuffer<bf16>& w = m == 0 ? st.w0 : st.w1;
    OPS_RETURN_IF_ERROR(AllocRandom(w, kExperts * out * in, 10 + m));
    std::vector<const bf16*> ptrs(kExperts);
    for (int64_t e = 0; e < kExperts; ++e) ptrs[e] = w.get() + e * out * in;
    OPS_RETURN_IF_ERROR(Upload(m == 0 ? st.w0_ptrs : st.w1_ptrs, ptrs));
  }
  const Dispatched d = Dispatch(StridedExpertIds(tokens).data(), tokens);
  OPS_RETURN_IF_ERROR(Upload(st.offsets, d.offsets));
  return Upload(st.pairs, d.pairs);
}

absl::Status CheckDecodeTokens(const char* op, int64_t tokens) {
  if (tokens <= 256) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(op, " is for decode steps: T <= 256, got ", tokens));
}

}  // namespace

// ids, weights [T, 8] from logits [T, 256] f32 and bias [256]: reads logits and bias, writes
// ids (int32) and weights (f32).
absl::StatusOr<Prepared> BuildMoeGate(int64_t tokens) {
  struct State { DeviceBuffer<float> logits, bias, weights; DeviceBuffer<int32_t> ids; };
  auto st = std::make_shared<State>();
  const int64_t n = tokens * kExperts, m = tokens * kTopK;
  Prepared p{.shape = Dims(tokens, kExperts) + "top8",
             .bytes = 4.0 * n + 4.0 * kExperts + 8.0 * m};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocRandom(st->logits, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->bias, kExperts, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->ids, p.copies * m));
  OPS_RETURN_IF_ERROR(Alloc(st->weights, p.copies * m));
  p.run = [st, tokens, n, m](int k, cudaStream_t s) {
    const MoeRouting routing{.num_experts = kExperts, .top_k = kTopK, .num_groups = 8,
                             .topk_groups = 4, .routed_scaling_factor = 2.5f,
                             .norm_topk_prob = true};
    return MoeGate(st->logits.get() + k * n, st->bias.get(), tokens, routing, st->ids.get() + k * m,
                   st->weights.get() + k * m, s);
  };
  return p;
}

// expert_offsets [257], sorted_pairs [T * 8] from ids [T, 8]: reads ids, writes both (int32).
absl::StatusOr<Prepared> BuildMoeDispatch(int64_t tokens) {
  struct State { DeviceBuffer<int32_t> ids, offsets, pairs; };
  auto st = std::make_shared<State>();
  const int64_t m = tokens * kTopK;
  Prepared p{.shape = Dims(tokens, kTopK) + "of256",
             .bytes = 4.0 * m + 4.0 * (kExperts + 1) + 4.0 * m};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(Upload(st->ids, RandomExpertIds(p.copies, tokens)));
  OPS_RETURN_IF_ERROR(Alloc(st->offsets, p.copies * (kExperts + 1)));
  OPS_RETURN_IF_ERROR(Alloc(st->pairs, p.copies * m));
  p.run = [st, tokens, m](int k, cudaStream_t s) {
    return MoeDispatch(st->ids.get() + k * m, tokens, kTopK, kExperts,
                       st->offsets.get() + k * (kExperts + 1), st->pairs.get() + k * m, s);
  };
  return p;
}

// out [T, 7168] += the weighted sum of each token's 8 expert outputs: reads expert_out
// [T * 8, 7168] f32, sorted_pairs and weights [T, 8]; reads and writes out.
absl::StatusOr<Prepared> BuildMoeCombine(int64_t tokens) {
  struct State {
    DeviceBuffer<float> expert_out, weights, out;
    DeviceBuffer<int32_t> pairs;
    DeviceBuffer<unsigned char> workspace;
  };
  auto st = std::make_shared<State>();
  const int64_t m = tokens * kTopK;
  Prepared p{.shape = Dims(m, kHidden) + "to" + Dims(tokens, kHidden),
             .bytes = 4.0 * m * kHidden + 8.0 * m + 2 * 4.0 * tokens * kHidden};
  p.copies = CopiesFor(p.bytes);
  const std::vector<int32_t> ids = RandomExpertIds(p.copies, tokens);
  std::vector<int32_t> pairs;
  for (int64_t k = 0; k < p.copies; ++k) {
    const std::vector<int32_t> one = Dispatch(&ids[k * m], tokens).pairs;
    pairs.insert(pairs.end(), one.begin(), one.end());
  }
  OPS_RETURN_IF_ERROR(AllocRandom(st->expert_out, p.copies * m * kHidden, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->weights, p.copies * m, 2));
  OPS_RETURN_IF_ERROR(AllocRandom(st->out, p.copies * tokens * kHidden, 3));
  OPS_RETURN_IF_ERROR(Upload(st->pairs, pairs));
  OPS_RETURN_IF_ERROR(
      Alloc(st->workspace, static_cast<int64_t>(MoeCombineWorkspaceBytes(tokens, kTopK))));
  p.run = [st, tokens, m](int k, cudaStream_t s) {
    return MoeCombine(st->expert_out.get() + k * m * kHidden, st->pairs.get() + k * m,
                      st->weights.get() + k * m, m, tokens, kTopK, kHidden, st->workspace.get(),
                      st->out.get() + k * tokens * kHidden, s);
  };
  return p;
}

// act [T * 8, 2048] = silu(x gate_e^T) * (x up_e^T) per expert's rows, all 256 experts local:
// reads the gate and up matrices of the experts with rows ([2048, 7168] bf16 each), x [T, 7168]
// f32, offsets and pairs; writes act f32. FLOPs 2 (T * 8) 7168 (2 * 2048).
absl::StatusOr<Prepared> BuildMoeGroupedGateUp(int64_t tokens) {
  OPS_RETURN_IF_ERROR(CheckDecodeTokens("moe_grouped_gate_up", tokens));
  auto st = std::make_shared<GroupedState>();
  const int64_t m = tokens * kTopK, active = std::min(m, kExperts);
  Prepared p{.shape = Dims(m, kHidden) + "x" + Dims(kExperts, 2 * kMoeInter, kHidden),
             .bytes = 2.0 * active * 2 * kMoeInter * kHidden + 4.0 * tokens * kHidden +
                      4.0 * (kExperts + 1) + 4.0 * m + 4.0 * m * kMoeInter,
             .flops = 2.0 * m * kHidden * 2 * kMoeInter};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocGrouped(*st, 2, kMoeInter, kHidden, tokens));
  OPS_RETURN_IF_ERROR(AllocRandom(st->in, p.copies * tokens * kHidden, 1));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * m * kMoeInter));
  p.run = [st, tokens, m](int k, cudaStream_t s) {
    const MoeGroupedWeights w{.gate = st->w0_ptrs.get(), .up = st->w1_ptrs.get(),
                              .expert_begin = 0, .num_experts = kExperts, .hidden = kHidden,
                              .width = kMoeInter};
    return MoeGroupedGateUp(st->in.get() + k * tokens * kHidden, st->offsets.get(),
                            st->pairs.get(), kTopK, m, w, st->out.get() + k * m * kMoeInter, s);
  };
  return p;
}

// y [T * 8, 7168] = act down_e^T per expert's rows, all 256 experts local: reads the down
// matrices of the experts with rows ([7168, 2048] bf16 each), act [T * 8, 2048] f32 and the
// offsets; writes y f32. FLOPs 2 (T * 8) 2048 7168.
absl::StatusOr<Prepared> BuildMoeGroupedDown(int64_t tokens) {
  OPS_RETURN_IF_ERROR(CheckDecodeTokens("moe_grouped_down", tokens));
  auto st = std::make_shared<GroupedState>();
  const int64_t m = tokens * kTopK, active = std::min(m, kExperts);
  Prepared p{.shape = Dims(m, kMoeInter) + "x" + Dims(kExperts, kHidden, kMoeInter),
             .bytes = 2.0 * active * kHidden * kMoeInter + 4.0 * m * kMoeInter +
                      4.0 * (kExperts + 1) + 4.0 * m * kHidden,
             .flops = 2.0 * m * kMoeInter * kHidden};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocGrouped(*st, 1, kHidden, kMoeInter, tokens));
  OPS_RETURN_IF_ERROR(AllocRandom(st->in, p.copies * m * kMoeInter, 1));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * m * kHidden));
  p.run = [st, m](int k, cudaStream_t s) {
    const MoeGroupedWeights w{.down = st->w0_ptrs.get(), .expert_begin = 0,
                              .num_experts = kExperts, .hidden = kHidden, .width = kMoeInter};
    return MoeGroupedDown(st->in.get() + k * m * kMoeInter, st->offsets.get(), m, w,
                          st->out.get() + k * m * kHidden, s);
  };
  return p;
}

namespace {

// tokens [B] from logits [B, 129280] f32: reads the logits, writes B int32 (the sort's
// workspace traffic is not counted: the floor is one pass over the logits).
absl::StatusOr<Prepared> BuildSample(int64_t batch, const SamplingParams& params) {
  struct State {
    SamplePlan plan;
    DeviceBuffer<float> logits;
    DeviceBuffer<SamplingParams> params;
    DeviceBuffer<uint64_t> steps;
    DeviceBuffer<int32_t> tokens;
    DeviceBuffer<unsigned char> workspace;
  };
  auto st = std::make_shared<State>();
  const int64_t n = batch * kVocab;
  Prepared p{.shape = Dims(batch, kVocab), .bytes = 4.0 * n + 4.0 * batch};
  p.copies = CopiesFor(p.bytes);
  absl::StatusOr<SamplePlan> plan = PlanSample(batch, kVocab);
  if (!plan.ok()) return plan.status();
  st->plan = *plan;
  std::vector<SamplingParams> per_row(batch, params);
  std::vector<uint64_t> steps(batch);
  for (int64_t b = 0; b < batch; ++b) {
    per_row[b].seed = static_cast<uint64_t>(b + 1);
    steps[b] = static_cast<uint64_t>(100 + b);
  }
  OPS_RETURN_IF_ERROR(AllocRandom(st->logits, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(Upload(st->params, per_row));
  OPS_RETURN_IF_ERROR(Upload(st->steps, steps));
  OPS_RETURN_IF_ERROR(Alloc(st->tokens, p.copies * batch));
  OPS_RETURN_IF_ERROR(Alloc(st->workspace, static_cast<int64_t>(st->plan.workspace_bytes)));
  p.run = [st, n, batch](int k, cudaStream_t s) {
    return Sample(st->logits.get() + k * n, st->params.get(), st->steps.get(), st->plan,
                  st->workspace.get(), st->tokens.get() + k * batch, s);
  };
  return p;
}

}  // namespace

absl::StatusOr<Prepared> BuildSampleGreedy(int64_t batch) {
  return BuildSample(batch, SamplingParams{.temperature = 0.0f});
}
absl::StatusOr<Prepared> BuildSampleTopP(int64_t batch) {
  return BuildSample(batch, SamplingParams{.temperature = 1.0f, .top_k = 0, .top_p = 0.9f});
}

}  // namespace mla::kernels::cuda::bench
