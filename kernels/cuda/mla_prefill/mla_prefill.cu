// Materialised MLA prefill attention on the GPU (see mla_prefill.h for the contract).
//
// Math (MODEL.md §3.2 steps 6-8), sequence s, head h, query row i at position p = ctx - q_len + i:
//   k^N_j = W_UK_h c_j, v_j = W_UV_h c_j                       (j < ctx, once per step)
//   s_j   = scale * (q^N . k^N_j + q^R . k^R_j)                 (j <= p)
//   out   = sum_j exp(s_j - m) v_j / d                          (online softmax)
// Shapes: q [tokens, heads, 192] f32; cache [num_blocks, 64, d_latent + 64] bf16 (paged by
// block_tables); wkv_b [heads * 256, d_latent] bf16; out [tokens, heads, 128] f32.
//
// Four launches:
//  1. PrefixKernel (one thread): ctx_start = exclusive prefix sum of context_lens (the gathered
//     rows of sequence s are [ctx_start[s], ctx_start[s + 1])) and tile_start = prefix sum of
//     ceil(q_len / kTileQ) (the query tiles of s).
//  2. GatherKernel: the cached rows of every context into latent [context_tokens, d_latent] and
//     rope [context_tokens, 64], 16 bytes per thread. Only slots j < ctx are read, and only
//     block-table entries j / 64 for those j, so unused slots and entries are never touched.
//  3. LinearBf16Out (cuBLASLt): kv [context_tokens, heads * 256] = bf16(latent wkv_b^T), per head
//     K^N then V, accumulated in fp32 and rounded once.
//  4. The flash-attention kernel on the tensor cores (attention.cu), grid (query tiles, heads).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_prefill/attention.h"
#include "kernels/cuda/mla_prefill/config.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/cuda/mla_prefill/ragged.cuh"
#include "kernels/mla_params.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace mla_prefill {
namespace {

constexpr size_t kAlignment = 256;
constexpr int kGatherThreads = 256;
constexpr int64_t kMaxGatherBlocks = 1 << 16;
constexpr int64_t kMaxGridY = 65535;

size_t AlignUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

__global__ void PrefixKernel(RaggedBatch batch, int32_t* ctx_start, int32_t* tile_start) {
  int32_t ctx = 0;
  int32_t tiles = 0;
  for (int64_t s = 0; s < batch.num_seqs; ++s) {
    ctx_start[s] = ctx;
    tile_start[s] = tiles;
    ctx += batch.context_lens[s];
    tiles += (batch.q_start[s + 1] - batch.q_start[s] + kTileQ - 1) / kTileQ;
  }
  ctx_start[batch.num_seqs] = ctx;
  tile_start[batch.num_seqs] = tiles;
}

// Row r of the gathered context (sequence s, key j = r - ctx_start[s]) <- cache slot
// block_tables[s, j / 64] * 64 + j % 64; 16-byte chunk c of the row goes to latent or rope.
__global__ void __launch_bounds__(kGatherThreads)
    GatherKernel(RaggedBatch batch, LatentCache cache, const int32_t* ctx_start, int64_t rows,
                 bf16* latent, bf16* rope) {
  const int64_t d_cache = cache.d_latent + cache.d_rope;
  const int64_t chunks_per_row = d_cache / kChunk;
  const int64_t total_rows = rows < ctx_start[batch.num_seqs] ? rows : ctx_start[batch.num_seqs];
  const int64_t total = total_rows * chunks_per_row;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(kGatherThreads) + threadIdx.x;
       idx < total; idx += static_cast<int64_t>(gridDim.x) * kGatherThreads) {
    const int64_t r = idx / chunks_per_row;
    const int64_t col = (idx % chunks_per_row) * kChunk;
    const int64_t s = OwnerOf(ctx_start, batch.num_seqs, r);
    const int64_t j = r - ctx_start[s];
    const int64_t block = batch.block_tables[s * batch.max_blocks_per_seq + j / kBlockSize];
    const int64_t slot = block * kBlockSize + j % kBlockSize;
    const uint4 chunk = *reinterpret_cast<const uint4*>(cache.data + slot * d_cache + col);
    bf16* dst = col < cache.d_latent ? latent + r * cache.d_latent + col
                                     : rope + r * cache.d_rope + (col - cache.d_latent);
    *reinterpret_cast<uint4*>(dst) = chunk;
  }
}

absl::Status Validate(const MlaPrefillParams& params, const MlaPrefillPlan& plan,
                      const void* workspace) {
  const MlaDims& dims = params.dims;
  if (dims.d_nope != kDNope || dims.d_rope != kDRope || dims.d_v != kDV) {
    return absl::UnimplementedError(absl::StrCat(
        "MlaPrefillAttention: dims.d_nope, d_rope and d_v must be 128, 64 and 128, got ",
        dims.d_nope, ", ", dims.d_rope, " and ", dims.d_v));
  }
  if (dims.d_latent <= 0 || dims.d_latent % kChunk != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaPrefillAttention: dims.d_latent must be a positive multiple of 8, got ",
        dims.d_latent));
  }
  if (dims.heads <= 0 || dims.heads > kMaxGridY) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaPrefillAttention: dims.heads must be in [1, ", kMaxGridY, "], got ", dims.heads));
  }
  if (params.cache.d_latent != dims.d_latent || params.cache.d_rope != dims.d_rope) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaPrefillAttention: cache.d_latent and cache.d_rope must equal dims' (", dims.d_latent,
        ", ", dims.d_rope, "), got ", params.cache.d_latent, " and ", params.cache.d_rope));
  }
  if (plan.num_seqs != params.batch.num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("MlaPrefillAttention: plan.num_seqs is ", plan.num_seqs,
                     " but batch.num_seqs is ", params.batch.num_seqs));
  }
  if (plan.heads != dims.heads || plan.d_latent != dims.d_latent) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaPrefillAttention: plan.heads and plan.d_latent are ", plan.heads, " and ",
        plan.d_latent, " but dims' are ", dims.heads, " and ", dims.d_latent));
  }
  if (reinterpret_cast<uintptr_t>(params.q) % sizeof(float2) != 0 ||
      reinterpret_cast<uintptr_t>(params.out) % sizeof(float2) != 0) {
    return absl::InvalidArgumentError(
        "MlaPrefillAttention: params.q and params.out must be 8-byte aligned");
  }
  if (plan.workspace_bytes > 0 &&
      (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % kAlignment != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MlaPrefillAttention: needs a 256-byte aligned workspace of ",
                     plan.workspace_bytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace mla_prefill

MlaPrefillPlan PlanMlaPrefill(int64_t num_seqs, int64_t tokens, int64_t context_tokens,
                              const MlaDims& dims) {
  using namespace mla_prefill;  // NOLINT: the kernel's own constants
  MlaPrefillPlan plan;
  plan.num_seqs = num_seqs;
  plan.tokens = tokens;
  plan.context_tokens = context_tokens;
  plan.heads = dims.heads;
  plan.d_latent = dims.d_latent;
  plan.max_tiles = (tokens + kTileQ - 1) / kTileQ + num_seqs;
  size_t offset = 0;
  const size_t prefix_bytes = AlignUp(static_cast<size_t>(num_seqs + 1) * sizeof(int32_t));
  plan.ctx_start = offset;
  offset += prefix_bytes;
  plan.tile_start = offset;
  offset += prefix_bytes;
  plan.latent = offset;
  offset += AlignUp(static_cast<size_t>(context_tokens * dims.d_latent) * sizeof(bf16));
  plan.rope = offset;
  offset += AlignUp(static_cast<size_t>(context_tokens * dims.d_rope) * sizeof(bf16));
  plan.kv = offset;
  offset += AlignUp(static_cast<size_t>(context_tokens * dims.heads * kDKv) * sizeof(bf16));
  plan.workspace_bytes = offset;
  return plan;
}

absl::Status MlaPrefillAttention(LinearContext& linear, const MlaPrefillParams& params,
                                 const MlaPrefillPlan& plan, void* workspace,
                                 cudaStream_t stream) {
  using namespace mla_prefill;  // NOLINT: the kernel's own constants
  if (absl::Status s = Validate(params, plan, workspace); !s.ok()) return s;
  if (plan.tokens == 0 || plan.num_seqs == 0) return absl::OkStatus();
  const MlaDims& dims = params.dims;
  char* base = static_cast<char*>(workspace);
  int32_t* ctx_start = reinterpret_cast<int32_t*>(base + plan.ctx_start);
  int32_t* tile_start = reinterpret_cast<int32_t*>(base + plan.tile_start);
  bf16* latent = reinterpret_cast<bf16*>(base + plan.latent);
  bf16* rope = reinterpret_cast<bf16*>(base + plan.rope);
  bf16* kv = reinterpret_cast<bf16*>(base + plan.kv);

  // 1. Prefix sums of the context lengths and of the query tiles.
  PrefixKernel<<<1, 1, 0, stream>>>(params.batch, ctx_start, tile_start);
  if (absl::Status s = LaunchStatus("MlaPrefill PrefixKernel"); !s.ok()) return s;

  // 2. Gather the contexts' cached rows; 3. up-project them: kv = bf16(latent wkv_b^T).
  if (plan.context_tokens > 0) {
    const int64_t chunks = plan.context_tokens * (dims.d_cache() / kChunk);
    const int64_t blocks = (chunks + kGatherThreads - 1) / kGatherThreads;
    GatherKernel<<<static_cast<unsigned>(blocks < kMaxGatherBlocks ? blocks : kMaxGatherBlocks),
                   kGatherThreads, 0, stream>>>(params.batch, params.cache, ctx_start,
                                                plan.context_tokens, latent, rope);
    if (absl::Status s = LaunchStatus("MlaPrefill GatherKernel"); !s.ok()) return s;
    if (absl::Status s = LinearBf16Out(linear, latent, params.wkv_b, plan.context_tokens,
                                       dims.d_latent, dims.heads * kDKv, kv, stream);
        !s.ok()) {
      return s;
    }
  }

  // 4. Flash attention per (query tile, head) on the tensor cores.
  AttentionArgs args;
  args.batch = params.batch;
  args.q = params.q;
  args.kv = kv;
  args.rope = rope;
  args.ctx_start = ctx_start;
  args.tile_start = tile_start;
  args.heads = dims.heads;
  args.context_tokens = plan.context_tokens;
  args.scale_log2 = params.softmax_scale * kLog2e;
  args.out = params.out;
  return LaunchPrefillAttention(args, plan.max_tiles, stream);
}

}  // namespace mla::kernels::cuda
