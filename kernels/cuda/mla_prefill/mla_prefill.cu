// Materialised MLA prefill attention on the GPU (see mla_prefill.h for the contract).
//
// Math (MODEL.md §3.2 steps 6-8), sequence s, head h, query row i at position p = ctx - q_len + i:
//   k^N_j = W_UK_h c_j, v_j = W_UV_h c_j                       (j < ctx, once per step)
//   s_j   = scale * (q^N . k^N_j + q^R . k^R_j)                 (j <= p)
//   out   = sum_j exp(s_j - m) v_j / d                          (m, d: SoftmaxState)
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
//  3. cuda::Linear: kv [context_tokens, heads * 256] = latent wkv_b^T (per head K^N then V).
//  4. AttentionKernel, grid (query tiles, heads): a CTA owns kTileQ query rows of one sequence
//     (found by binary search in tile_start) and one head. Per tile of 32 keys, loaded to shared
//     memory (keys past the tile's last position zero-filled):
//       - scores: lane l of the warp of row i: s = scale * (q^N . k^N_l + q^R . k^R_l), -inf
//         past the row's position;
//       - the tile's state (m_t = max s, d_t = sum exp(s - m_t)) by butterfly shuffles, so every
//         lane holds the same values, merged into the row's state: SoftmaxState::Merge gives
//         (mine, theirs);
//       - values: o <- mine * o + theirs * sum_l exp(s_l - m_t) v_l, lane l holding columns
//         l + 32 c.
//     Tiles past a row's position are skipped for that row (they hold no key it may see).
// fp32 on the CUDA cores: a first, correct version (no tensor cores in the attention itself).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_prefill/config.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/mla_params.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace mla_prefill {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kAlignment = 256;
constexpr int kGatherThreads = 256;
constexpr int64_t kMaxGatherBlocks = 1 << 16;
constexpr int64_t kMaxGridY = 65535;

size_t AlignUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// The largest s < num_seqs with start[s] <= x (start non-decreasing, start[0] = 0 <= x): the
// sequence that owns item x, skipping sequences that own none.
__device__ __forceinline__ int64_t OwnerOf(const int32_t* start, int64_t num_seqs, int64_t x) {
  int64_t lo = 0;
  int64_t hi = num_seqs;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (start[mid] <= x) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

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

struct AttentionArgs {
  RaggedBatch batch;
  const float* q = nullptr;            // [tokens, heads, 192]
  const float* kv = nullptr;           // [context_tokens, heads, 256]
  const bf16* rope = nullptr;          // [context_tokens, 64]
  const int32_t* ctx_start = nullptr;  // [num_seqs + 1]
  const int32_t* tile_start = nullptr; // [num_seqs + 1]
  int64_t heads = 0;
  int64_t context_tokens = 0;          // the plan's: rows of kv and rope
  float scale = 0.0f;
  float* out = nullptr;                // [tokens, heads, 128]
};

// Every piece of the attention kernel's shared memory (STYLE.md T3).
struct SharedStorage {
  float q[kTileQ][kDQk];     // the tile's query rows (zeros past the sequence's rows)
  float k[kTileK][kKStride]; // key tile: [k^N ; k^R], zeros past the last visible key
  float v[kTileK][kDV];      // value tile, zeros past the last visible key
};

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  return v;
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__global__ void __launch_bounds__(kThreads) AttentionKernel(AttentionArgs args) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  SharedStorage& sh = *reinterpret_cast<SharedStorage*>(shared_bytes);
  const int64_t num_seqs = args.batch.num_seqs;
  const int64_t tile = blockIdx.x;
  const int64_t h = blockIdx.y;
  if (tile >= args.tile_start[num_seqs]) return;
  const int64_t s = OwnerOf(args.tile_start, num_seqs, tile);
  const int64_t q_begin = args.batch.q_start[s];
  const int64_t q_len = args.batch.q_start[s + 1] - q_begin;
  const int64_t ctx = args.batch.context_lens[s];
  const int64_t row_base = args.ctx_start[s];
  if (row_base + ctx > args.context_tokens) return;  // past the plan: the output stays unwritten
  const int64_t r0 = (tile - args.tile_start[s]) * kTileQ;
  const int64_t rows = q_len - r0 < kTileQ ? q_len - r0 : kTileQ;
  const int64_t first_pos = ctx - q_len + r0;  // position of the tile's row 0
  const int64_t num_keys = first_pos + rows;   // keys 0 .. the tile's last position
  const int64_t kv_stride = args.heads * kDKv;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;

  // Q tile: q[q_begin + r0 + i, h, :] for i < rows, zeros after.
  for (int idx = threadIdx.x; idx < kTileQ * kDQk; idx += kThreads) {
    const int i = idx / kDQk;
    const int d = idx % kDQk;
    sh.q[i][d] = i < rows ? args.q[((q_begin + r0 + i) * args.heads + h) * kDQk + d] : 0.0f;
  }

  SoftmaxState state[kRowsPerWarp];
  float o[kRowsPerWarp][kValuesPerLane] = {};
  for (int64_t key0 = 0; key0 < num_keys; key0 += kTileK) {
    __syncthreads();  // the previous tile's readers are done (and the Q tile is in place)
    // K tile [k^N_j ; k^R_j] and V tile v_j for j = key0 + jj < num_keys, zeros after.
    for (int idx = threadIdx.x; idx < kTileK * kDQk; idx += kThreads) {
      const int jj = idx / kDQk;
      const int d = idx % kDQk;
      const int64_t row = row_base + key0 + jj;
      float value = 0.0f;
      if (key0 + jj < num_keys) {
        value = d < kDNope ? args.kv[row * kv_stride + h * kDKv + d]
                           : ToFloat(args.rope[row * kDRope + (d - kDNope)]);
      }
      sh.k[jj][d] = value;
    }
    for (int idx = threadIdx.x; idx < kTileK * kDV; idx += kThreads) {
      const int jj = idx / kDV;
      const int e = idx % kDV;
      const int64_t row = row_base + key0 + jj;
      sh.v[jj][e] = key0 + jj < num_keys ? args.kv[row * kv_stride + h * kDKv + kDNope + e] : 0.0f;
    }
    __syncthreads();

    const int64_t key = key0 + lane;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int i = warp * kRowsPerWarp + rr;
      const int64_t position = first_pos + i;
      if (i >= rows || key0 > position) continue;  // warp-uniform: no visible key in this tile
      // s = scale * (q^N . k^N + q^R . k^R), -inf past the row's position.
      float nope = 0.0f;
#pragma unroll 8
      for (int d = 0; d < kDNope; ++d) nope += sh.q[i][d] * sh.k[lane][d];
      float rope = 0.0f;
#pragma unroll 8
      for (int d = kDNope; d < kDQk; ++d) rope += sh.q[i][d] * sh.k[lane][d];
      const bool visible = key <= position;
      const float score = visible ? args.scale * (nope + rope) : -INFINITY;
      // Tile state (m_t, d_t); lane 0's key (key0 <= position) is visible, so m_t is finite.
      const float m_tile = WarpMax(score);
      const float p = visible ? expf(score - m_tile) : 0.0f;
      const SoftmaxState tile_state{m_tile, WarpSum(p)};
      const SoftmaxRescale f = state[rr].Merge(tile_state);
      // incoming = sum_l p_l v_l;  o <- mine * o + theirs * incoming.
      float incoming[kValuesPerLane] = {};
#pragma unroll 4
      for (int jj = 0; jj < kTileK; ++jj) {
        const float p_j = __shfl_sync(kFullMask, p, jj);
#pragma unroll
        for (int c = 0; c < kValuesPerLane; ++c) incoming[c] += p_j * sh.v[jj][lane + kWarpSize * c];
      }
#pragma unroll
      for (int c = 0; c < kValuesPerLane; ++c) o[rr][c] = o[rr][c] * f.mine + f.theirs * incoming[c];
    }
  }

  // out = o / d.
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int i = warp * kRowsPerWarp + rr;
    if (i >= rows) continue;
    const float inv_sum = state[rr].InverseSum();
    float* out = args.out + ((q_begin + r0 + i) * args.heads + h) * kDV;
#pragma unroll
    for (int c = 0; c < kValuesPerLane; ++c) out[lane + kWarpSize * c] = o[rr][c] * inv_sum;
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
  offset += AlignUp(static_cast<size_t>(context_tokens * dims.heads * kDKv) * sizeof(float));
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
  float* kv = reinterpret_cast<float*>(base + plan.kv);

  // 1. Prefix sums of the context lengths and of the query tiles.
  PrefixKernel<<<1, 1, 0, stream>>>(params.batch, ctx_start, tile_start);
  if (absl::Status s = LaunchStatus("MlaPrefill PrefixKernel"); !s.ok()) return s;

  // 2. Gather the contexts' cached rows; 3. up-project them: kv = latent wkv_b^T.
  if (plan.context_tokens > 0) {
    const int64_t chunks = plan.context_tokens * (dims.d_cache() / kChunk);
    const int64_t blocks = (chunks + kGatherThreads - 1) / kGatherThreads;
    GatherKernel<<<static_cast<unsigned>(blocks < kMaxGatherBlocks ? blocks : kMaxGatherBlocks),
                   kGatherThreads, 0, stream>>>(params.batch, params.cache, ctx_start,
                                                plan.context_tokens, latent, rope);
    if (absl::Status s = LaunchStatus("MlaPrefill GatherKernel"); !s.ok()) return s;
    if (absl::Status s = Linear(linear, latent, params.wkv_b, plan.context_tokens, dims.d_latent,
                                dims.heads * kDKv, kv, stream);
        !s.ok()) {
      return s;
    }
  }

  // 4. Flash attention per (query tile, head).
  AttentionArgs args;
  args.batch = params.batch;
  args.q = params.q;
  args.kv = kv;
  args.rope = rope;
  args.ctx_start = ctx_start;
  args.tile_start = tile_start;
  args.heads = dims.heads;
  args.context_tokens = plan.context_tokens;
  args.scale = params.softmax_scale;
  args.out = params.out;
  constexpr int kSmemBytes = sizeof(SharedStorage);
  MLA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const dim3 grid(static_cast<unsigned>(plan.max_tiles), static_cast<unsigned>(dims.heads));
  AttentionKernel<<<grid, kThreads, kSmemBytes, stream>>>(args);
  return LaunchStatus("MlaPrefill AttentionKernel");
}

}  // namespace mla::kernels::cuda
