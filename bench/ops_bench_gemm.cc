// mla_ops_bench's GEMM cases (ops_bench.h): cuda::Linear (cuBLASLt, bf16 x bf16 -> fp32) on
// every projection of a V3 layer and the lm_head, the MLA absorb / un-absorb projections
// (strided-batched cuBLASLt, 128 heads), and MlaPrefillAttention over one sequence with no
// cached prefix. Every copy has its own weights too, so no call finds its weights in L2.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/ops_bench.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_absorb/mla_absorb.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda::bench {
namespace {

constexpr MlaDims kMla{.heads = kHeads, .d_latent = kKvLora, .d_rope = kRope, .d_nope = kNope,
                       .d_v = kVHead};
constexpr int64_t kWkvBRows = kHeads * (kNope + kVHead);  // wkv_b [32768, 512]

// y [rows, out] f32 = x [rows, in] bf16 . w [out, in]^T bf16: reads x and w, writes y;
// FLOPs 2 * rows * in * out.
absl::StatusOr<Prepared> BuildLinear(int64_t rows, int64_t in, int64_t out) {
  struct State {
    std::unique_ptr<LinearContext> context;
    DeviceBuffer<bf16> x, w;
    DeviceBuffer<float> y;
  };
  auto st = std::make_shared<State>();
  Prepared p{.shape = Dims(rows, in) + "x" + Dims(out, in),
             .bytes = 2.0 * rows * in + 2.0 * out * in + 4.0 * rows * out,
             .flops = 2.0 * rows * in * out};
  p.copies = CopiesFor(p.bytes);
  absl::StatusOr<std::unique_ptr<LinearContext>> context = LinearContext::Create();
  if (!context.ok()) return context.status();
  st->context = std::move(*context);
  OPS_RETURN_IF_ERROR(AllocRandom(st->x, p.copies * rows * in, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->w, p.copies * out * in, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->y, p.copies * rows * out));
  p.run = [st, rows, in, out](int k, cudaStream_t s) {
    return Linear(*st->context, st->x.get() + k * rows * in, st->w.get() + k * out * in, rows, in,
                  out, st->y.get() + k * rows * out, s);
  };
  return p;
}

}  // namespace

absl::StatusOr<Prepared> BuildLinearQA(int64_t t) { return BuildLinear(t, kHidden, kQLora); }
absl::StatusOr<Prepared> BuildLinearQB(int64_t t) {
  return BuildLinear(t, kQLora, kHeads * (kNope + kRope));
}
absl::StatusOr<Prepared> BuildLinearKvA(int64_t t) {
  return BuildLinear(t, kHidden, kKvLora + kRope);
}
absl::StatusOr<Prepared> BuildLinearOProj(int64_t t) {
  return BuildLinear(t, kHeads * kVHead, kHidden);
}
// One of the dense MLP's gate and up projections (each [18432, 7168]).
absl::StatusOr<Prepared> BuildLinearMlpGateUp(int64_t t) { return BuildLinear(t, kHidden, kInter); }
absl::StatusOr<Prepared> BuildLinearMlpDown(int64_t t) { return BuildLinear(t, kInter, kHidden); }
// One routed expert's gate projection over its share of the tokens: T' = ceil(T * 8 / 256).
absl::StatusOr<Prepared> BuildLinearExpertGate(int64_t t) {
  return BuildLinear((t * kTopK + kExperts - 1) / kExperts, kHidden, kMoeInter);
}
absl::StatusOr<Prepared> BuildLinearLmHead(int64_t t) {
  if (t != 64) return absl::InvalidArgumentError("linear_lm_head runs at T = 64 only");
  return BuildLinear(t, kHidden, kVocab);
}

// q_abs [T, 128, 576] f32 = [W_UK_h^T q^N ; q^R] from q [T, 128, 192] f32 and wkv_b's W_UK half:
// reads q (nope and rope), W_UK (128 x 128 x 512 bf16), writes q_abs; FLOPs 2 T 128 128 512.
absl::StatusOr<Prepared> BuildAbsorbQuery(int64_t tokens) {
  struct State {
    std::unique_ptr<MlaAbsorbContext> context;
    DeviceBuffer<float> q, q_abs;
    DeviceBuffer<bf16> wkv_b;
    DeviceBuffer<unsigned char> workspace;
  };
  auto st = std::make_shared<State>();
  const int64_t nq = tokens * kHeads * kMla.d_qk(), nout = tokens * kHeads * kMla.d_cache();
  const int64_t nw = kWkvBRows * kKvLora;
  Prepared p{.shape = Dims(tokens, kHeads, kMla.d_qk()) + "x" + Dims(kHeads, kNope, kKvLora),
             .bytes = 4.0 * nq + 2.0 * kHeads * kNope * kKvLora + 4.0 * nout,
             .flops = 2.0 * tokens * kHeads * kNope * kKvLora};
  p.copies = CopiesFor(p.bytes);
  absl::StatusOr<std::unique_ptr<MlaAbsorbContext>> context = MlaAbsorbContext::Create();
  if (!context.ok()) return context.status();
  st->context = std::move(*context);
  OPS_RETURN_IF_ERROR(AllocRandom(st->q, p.copies * nq, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->wkv_b, p.copies * nw, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->q_abs, p.copies * nout));
  OPS_RETURN_IF_ERROR(Alloc(st->workspace, MlaAbsorbQueryWorkspaceBytes(tokens, kMla)));
  p.run = [st, tokens, nq, nout, nw](int k, cudaStream_t s) {
    return MlaAbsorbQuery(*st->context, st->q.get() + k * nq, st->wkv_b.get() + k * nw, tokens,
                          kMla, st->workspace.get(), st->q_abs.get() + k * nout, s);
  };
  return p;
}

// out [T, 128, 128] f32 = W_UV_h latent_out from latent_out [T, 128, 512] f32 and wkv_b's W_UV
// half: reads latent_out, W_UV (128 x 128 x 512 bf16), writes out; FLOPs 2 T 128 512 128.
absl::StatusOr<Prepared> BuildUnabsorbOutput(int64_t tokens) {
  struct State {
    std::unique_ptr<MlaAbsorbContext> context;
    DeviceBuffer<float> latent_out, out;
    DeviceBuffer<bf16> wkv_b;
    DeviceBuffer<unsigned char> workspace;
  };
  auto st = std::make_shared<State>();
  const int64_t nin = tokens * kHeads * kKvLora, nout = tokens * kHeads * kVHead;
  const int64_t nw = kWkvBRows * kKvLora;
  Prepared p{.shape = Dims(tokens, kHeads, kKvLora) + "x" + Dims(kHeads, kVHead, kKvLora),
             .bytes = 4.0 * nin + 2.0 * kHeads * kVHead * kKvLora + 4.0 * nout,
             .flops = 2.0 * tokens * kHeads * kKvLora * kVHead};
  p.copies = CopiesFor(p.bytes);
  absl::StatusOr<std::unique_ptr<MlaAbsorbContext>> context = MlaAbsorbContext::Create();
  if (!context.ok()) return context.status();
  st->context = std::move(*context);
  OPS_RETURN_IF_ERROR(AllocRandom(st->latent_out, p.copies * nin, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->wkv_b, p.copies * nw, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * nout));
  OPS_RETURN_IF_ERROR(Alloc(st->workspace, MlaUnabsorbOutputWorkspaceBytes(tokens, kMla)));
  p.run = [st, tokens, nin, nout, nw](int k, cudaStream_t s) {
    return MlaUnabsorbOutput(*st->context, st->latent_out.get() + k * nin,
                             st->wkv_b.get() + k * nw, tokens, kMla, st->workspace.get(),
                             st->out.get() + k * nout, s);
  };
  return p;
}

// One sequence of T tokens, no cached prefix, 128 heads (materialised form, MODEL.md §3.2):
// reads q [T, 128, 192] f32, the T cached rows (576 bf16 each), wkv_b [32768, 512] bf16; writes
// out [T, 128, 128] f32. FLOPs: the up-projection 2 T 512 32768 plus causal attention
// 2 * 128 * (192 + 128) * T (T + 1) / 2 (keys each query row sees).
absl::StatusOr<Prepared> BuildPrefillAttention(int64_t tokens) {
  struct State {
    std::unique_ptr<LinearContext> linear;
    DeviceBuffer<float> q, out;
    DeviceBuffer<bf16> cache, wkv_b;
    DeviceBuffer<int32_t> q_start, context_lens, block_tables;
    DeviceBuffer<unsigned char> workspace;
    MlaPrefillPlan plan;
    float scale = 0;
  };
  auto st = std::make_shared<State>();
  const int64_t nq = tokens * kHeads * kMla.d_qk(), nout = tokens * kHeads * kVHead;
  const int64_t nw = kWkvBRows * kKvLora;
  const int64_t blocks = (tokens + kBlockSize - 1) / kBlockSize;
  const double attended = 0.5 * static_cast<double>(tokens) * (tokens + 1);
  Prepared p{.shape = "1x" + Dims(tokens, kHeads, kMla.d_qk()) + ",ctx" + std::to_string(tokens),
             .bytes = 4.0 * nq + 2.0 * tokens * kMla.d_cache() + 2.0 * nw + 4.0 * nout,
             .flops = 2.0 * tokens * kKvLora * kWkvBRows +
                      2.0 * kHeads * (kMla.d_qk() + kVHead) * attended};
  p.copies = CopiesFor(p.bytes);
  absl::StatusOr<std::unique_ptr<LinearContext>> linear = LinearContext::Create();
  if (!linear.ok()) return linear.status();
  st->linear = std::move(*linear);
  st->plan = PlanMlaPrefill(1, tokens, tokens, kMla);
  RopeConfig config;
  config.factor = 40.0;
  st->scale = cpu::SoftmaxScale(config, kMla.d_qk());
  std::vector<int32_t> tables(p.copies * blocks);
  for (int64_t i = 0; i < p.copies * blocks; ++i) tables[i] = static_cast<int32_t>(i);
  OPS_RETURN_IF_ERROR(AllocRandom(st->q, p.copies * nq, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->cache, p.copies * blocks * kBlockSize * kMla.d_cache(), 2));
  OPS_RETURN_IF_ERROR(AllocRandom(st->wkv_b, p.copies * nw, 3));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * nout));
  OPS_RETURN_IF_ERROR(Upload(st->q_start, std::vector<int32_t>{0, static_cast<int32_t>(tokens)}));
  OPS_RETURN_IF_ERROR(Upload(st->context_lens, std::vector<int32_t>{static_cast<int32_t>(tokens)}));
  OPS_RETURN_IF_ERROR(Upload(st->block_tables, tables));
  OPS_RETURN_IF_ERROR(Alloc(st->workspace, static_cast<int64_t>(st->plan.workspace_bytes)));
  const int64_t num_blocks = p.copies * blocks;
  p.run = [st, nq, nout, nw, blocks, num_blocks](int k, cudaStream_t s) {
    MlaPrefillParams params;
    params.dims = kMla;
    params.batch = {.num_seqs = 1, .q_start = st->q_start.get(),
                    .context_lens = st->context_lens.get(),
                    .block_tables = st->block_tables.get() + k * blocks,
                    .max_blocks_per_seq = blocks};
    params.cache = {.data = st->cache.get(), .num_blocks = num_blocks, .d_latent = kKvLora,
                    .d_rope = kRope};
    params.q = st->q.get() + k * nq;
    params.wkv_b = st->wkv_b.get() + k * nw;
    params.softmax_scale = st->scale;
    params.out = st->out.get() + k * nout;
    return MlaPrefillAttention(*st->linear, params, st->plan, st->workspace.get(), s);
  };
  return p;
}

}  // namespace mla::kernels::cuda::bench
