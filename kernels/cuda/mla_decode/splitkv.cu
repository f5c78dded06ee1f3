// Absorbed MLA decode attention, split-KV, on tensor cores (mma.sync m16n8k16, bf16 -> fp32).
//
// Math (MODEL.md §3.3 steps 4-5), for query row t (position p) and head h, keys j <= p:
//   s_j = scale * q_abs[t, h] . K_j            K_j = cache row of key j: [c_j (512) ; k^R_j (64)]
//   out_latent[t, h] = sum_j softmax(s)_j c_j, lse[t, h] = m + ln d   (online softmax, m and d)
// Shapes: q_abs [tokens, heads, 576] f32; cache [num_blocks, 64, 576] bf16 (paged by
// block_tables); out_latent [tokens, heads, 512] f32; lse [tokens, heads] f32.
//
// Grid: x = token * head_groups + head group (64 heads, the two groups of a token are adjacent so
// they read the same cache blocks at about the same time, from L2), y = key split (plan.h).
// Per CTA (config.h): the 64 queries are rounded to bf16 into shared memory once; cache blocks
// of 64 keys stream through two shared-memory stages by cp.async (the next block loads while
// this one is used). Per block, three steps separated by barriers:
//   1. scores (warp = 16 heads x 32 keys): S = Q K^T over the 576-wide keys; the warp's partial
//      softmax state (max S, sum exp(S - max S)) of its 32 keys goes to shared memory;
//   2. softmax: both key-half warps of a head row merge the two partial states into the running
//      state in the same order (SoftmaxState::Merge, fp32), so they hold identical (m, d);
//      P = exp(S - m_new) goes to shared memory in bf16, with exp(m_old - m_new) per head;
//   3. values (warp = 64 heads x 64 latent columns): O = O * exp(m_old - m_new) + P V, with
//      V = the first 512 columns of the cached keys.
// Keys past the split's end (and past the row's position) get score -inf, and their smem rows
// are zero-filled instead of loaded, so NaN in unused cache slots cannot reach the sums.
// With one split, out = O / d and lse are written here; with several, the unnormalised O and
// (m, d) go to the workspace and combine.cu merges them. Shared memory: 231,680 bytes, so the
// query and cache rows are swizzled rather than padded (config.h).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/mla_decode/warp_mma.cuh"
#include "kernels/mla_params.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace mla_decode {
namespace {

using Row = __nv_bfloat16[kDCache];     // one swizzled 576-wide row (query or cached key)
using PRow = __nv_bfloat16[kPStride];   // one padded row of the tile's softmax weights

// Every piece of the kernel's shared memory (STYLE.md T3).
struct SharedStorage {
  Row q[kHeadsPerCta];                      // this CTA's queries, bf16
  Row kv[kStages][kKeysPerTile];            // cache tiles (keys; the values are their first 512)
  PRow p[kHeadsPerCta];                     // P = exp(S - m_new) of the tile, bf16
  float2 part[kScoreKeyWarps][kHeadsPerCta];  // per key half: the tile's partial (m, d); after
                                              // the last tile, part[0] holds each head's (m, d)
  float rescale[kHeadsPerCta];              // exp(m_old - m_new) of the tile, per head
};
static_assert(sizeof(SharedStorage) <= 232448, "more than an H100 block's shared memory");

// Element offset of (row, col) in a swizzled Row: 16-byte chunk c of row r sits at c ^ (r % 8).
__device__ __forceinline__ int Swizzle(int row, int col) {
  return ((col / kChunk) ^ (row % kSwizzleRows)) * kChunk + col % kChunk;
}

// Where the split results go when the plan has several splits (else unused).
struct SplitArgs {
  int64_t keys_per_split = 0;
  int64_t num_splits = 1;
  int64_t tokens = 0;
  float* partial_out = nullptr;     // [num_splits, tokens, heads, 512]
  float2* partial_state = nullptr;  // [num_splits, tokens, heads]: (m, d)
};

// The CTA's share of the work: one query row, 64 heads, one range of keys.
struct CtaWork {
  int64_t token = 0;
  int64_t seq = 0;
  int head0 = 0;
  int64_t key_begin = 0;  // a multiple of kKeysPerTile
  int64_t key_end = 0;    // <= the row's position + 1
  int num_tiles = 0;
};

__device__ CtaWork LocateWork(const MlaDecodeParams& p, const SplitArgs& split) {
  const int head_groups = static_cast<int>((p.dims.heads + kHeadsPerCta - 1) / kHeadsPerCta);
  CtaWork w;
  w.token = blockIdx.x / head_groups;
  w.head0 = static_cast<int>(blockIdx.x % head_groups) * kHeadsPerCta;
  // The row's sequence: the largest s with q_start[s] <= token (empty sequences skipped).
  int64_t lo = 0;
  int64_t hi = p.batch.num_seqs;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (p.batch.q_start[mid] <= w.token) lo = mid; else hi = mid;
  }
  w.seq = lo;
  const int64_t q_begin = p.batch.q_start[lo];
  const int64_t q_len = p.batch.q_start[lo + 1] - q_begin;
  const int64_t num_keys = p.batch.context_lens[lo] - q_len + (w.token - q_begin) + 1;
  if (split.num_splits == 1) {
    w.key_begin = 0;
    w.key_end = num_keys;
  } else {
    w.key_begin = blockIdx.y * split.keys_per_split;
    w.key_end = min(w.key_begin + split.keys_per_split, num_keys);
  }
  w.num_tiles = w.key_end > w.key_begin
                    ? static_cast<int>((w.key_end - w.key_begin + kKeysPerTile - 1) / kKeysPerTile)
                    : 0;
  return w;
}

// Producer: q_abs rows of heads head0 .. head0 + 63 -> bf16 in smem.q (zeros past `heads`).
__device__ void LoadQueries(const MlaDecodeParams& p, const CtaWork& w, SharedStorage& smem) {
  constexpr int kVecsPerRow = kDCache / 4;  // float4s
  for (int idx = threadIdx.x; idx < kHeadsPerCta * kVecsPerRow; idx += kThreads) {
    const int row = idx / kVecsPerRow;
    const int col = (idx % kVecsPerRow) * 4;
    const int64_t head = w.head0 + row;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (head < p.dims.heads) {
      v = *reinterpret_cast<const float4*>(p.q_abs + (w.token * p.dims.heads + head) * kDCache + col);
    }
    *reinterpret_cast<uint2*>(&smem.q[row][Swizzle(row, col)]) =
        make_uint2(warp::PackBf16(v.x, v.y), warp::PackBf16(v.z, v.w));
  }
}

// Producer: cache tile `tile` of the CTA's key range -> dst, asynchronously (16-byte copies,
// coalesced: a cache block is contiguous). Rows of keys past key_end are zero-filled.
__device__ void LoadCacheTile(const MlaDecodeParams& p, const CtaWork& w, int tile, Row* dst) {
  const int64_t key0 = w.key_begin + static_cast<int64_t>(tile) * kKeysPerTile;
  const int64_t valid = w.key_end - key0;
  const int64_t block =
      p.batch.block_tables[w.seq * p.batch.max_blocks_per_seq + key0 / kKeysPerTile];
  const __nv_bfloat16* src =
      reinterpret_cast<const __nv_bfloat16*>(p.cache.data) + block * kKeysPerTile * kDCache;
  for (int idx = threadIdx.x; idx < kKeysPerTile * kChunksPerRow; idx += kThreads) {
    const int key = idx / kChunksPerRow;
    const int col = (idx % kChunksPerRow) * kChunk;
    thread::CopyAsync16(&dst[key][Swizzle(key, col)], src + key * kDCache + col, key < valid);
  }
}

}  // namespace

// The kernel's warp-level steps sit beside the primitives of warp_mma.cuh (namespace warp).
// Lane l holds, of each 16-row m-tile, rows g = l / 4 and g + 8 (r = 0, 1), and of each 8-column
// n-tile, columns 2t and 2t + 1, t = l % 4.
namespace warp {

// Step 1: S[16 x 32] = Q[row0 .. row0+15, :] K[key0 .. key0+31, :]^T over the 576-wide keys.
__device__ __forceinline__ void ComputeScores(const Row* q, const Row* kv, int row0, int key0,
                                              int lane, float (&s)[kScoreTiles][4]) {
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
  const int q_row = row0 + lane % 16;                             // A: rows of matrices 0-1 | 2-3
  const int q_col = (lane / 16) * 8;                              //    cols +0 | +8
#pragma unroll 4
  for (int k0 = 0; k0 < kDCache; k0 += kMmaK) {
    uint32_t a[4];
    LoadMatrixX4(a, &q[q_row][Swizzle(q_row, k0 + q_col)]);
#pragma unroll
    for (int n = 0; n < kScoreTiles; n += 2) {
      // B: keys 8n + l % 8 (+8 for lanes 16..31), dims k0 (+8 for lanes 8..15, 24..31).
      const int key = key0 + n * kMmaN + lane % 8 + (lane / 16) * 8;
      uint32_t b[4];
      LoadMatrixX4(b, &kv[key][Swizzle(key, k0 + ((lane / 8) % 2) * 8)]);
      MmaBf16(s[n], a, b[0], b[1]);
      MmaBf16(s[n + 1], a, b[2], b[3]);
    }
  }
}

// Step 1 (end): s <- scale * s (-inf for keys >= valid), then this warp's partial state per row:
// m_part = max s, s <- exp(s - m_part) (0 when the half holds no valid key), d_part = sum s.
__device__ __forceinline__ void PartialSoftmax(float (&s)[kScoreTiles][4], int key0,
                                               int64_t valid, float scale, int lane,
                                               SoftmaxState (&part)[2]) {
  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float m_part = -INFINITY;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = key0 + n * kMmaN + 2 * t + e;
        const float x = key < valid ? s[n][2 * r + e] * scale : -INFINITY;
        s[n][2 * r + e] = x;
        m_part = fmaxf(m_part, x);
      }
    }
    m_part = QuadMax(m_part);
    float d_part = 0.0f;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float w = m_part == -INFINITY ? 0.0f : expf(s[n][2 * r + e] - m_part);
        s[n][2 * r + e] = w;
        d_part += w;
      }
    }
    part[r] = SoftmaxState{m_part, QuadSum(d_part)};
  }
}

// Step 2: merge the tile's two partial states (key half 0, then 1) into the running state:
//   (m, d) <- Merge(Merge((m, d), part_0), part_1),
// so exp(s - m_new) = exp(s - m_part_c) * factor_c, factor_0 = theirs_0 * mine_1,
// factor_1 = theirs_1, and O's rescale is mine_0 * mine_1. Returns this warp's factor per row.
__device__ __forceinline__ void MergeTile(const float2 (*part)[kHeadsPerCta], int row0,
                                          int key_half, int lane, SoftmaxState (&state)[2],
                                          float (&factor)[2], float (&rescale)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + lane / 4 + 8 * r;
    const float2 half0 = part[0][row];
    const float2 half1 = part[1][row];
    const SoftmaxRescale f0 = state[r].Merge(SoftmaxState{half0.x, half0.y});
    const SoftmaxRescale f1 = state[r].Merge(SoftmaxState{half1.x, half1.y});
    factor[r] = key_half == 0 ? f0.theirs * f1.mine : f1.theirs;
    rescale[r] = f0.mine * f1.mine;
  }
}

// Step 2 (end): P = exp(s - m_new) in bf16 -> smem.p[row0 + g (+8)][key0 + 8n + 2t ..].
__device__ __forceinline__ void StoreWeights(const float (&s)[kScoreTiles][4],
                                             const float (&factor)[2], int row0, int key0,
                                             int lane, PRow* p) {
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      *reinterpret_cast<uint32_t*>(&p[row0 + g + 8 * r][key0 + n * kMmaN + 2 * t]) =
          PackBf16(s[n][2 * r] * factor[r], s[n][2 * r + 1] * factor[r]);
    }
  }
}

// Step 3: O[64 x 64] = O * rescale[row] + P[64 x 64] V[64 x col0 .. col0+63].
__device__ __forceinline__ void AccumulateValues(const PRow* p, const Row* kv,
                                                 const float* rescale, int col0, int lane,
                                                 float (&o)[kRowTiles][kOutTiles][4]) {
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m) {
    const float lo = rescale[m * kMmaM + lane / 4];
    const float hi = rescale[m * kMmaM + lane / 4 + 8];
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
      o[m][n][0] *= lo;
      o[m][n][1] *= lo;
      o[m][n][2] *= hi;
      o[m][n][3] *= hi;
    }
  }
#pragma unroll
  for (int k0 = 0; k0 < kKeysPerTile; k0 += kMmaK) {
    // B = V: keys k0 + l % 8 (+8 for lanes 8..15, 24..31), cols +8 for lanes 16..31; .trans.
    uint32_t b[kOutTiles / 2][4];
    const int key = k0 + lane % 8 + ((lane / 8) % 2) * 8;
#pragma unroll
    for (int n = 0; n < kOutTiles; n += 2) {
      LoadMatrixX4Trans(b[n / 2], &kv[key][Swizzle(key, col0 + n * kMmaN + (lane / 16) * 8)]);
    }
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
      uint32_t a[4];  // A = P: rows 16m + l % 16, keys k0 (+8 for lanes 16..31)
      LoadMatrixX4(a, &p[m * kMmaM + lane % 16][k0 + (lane / 16) * 8]);
#pragma unroll
      for (int n = 0; n < kOutTiles; n += 2) {
        MmaBf16(o[m][n], a, b[n / 2][0], b[n / 2][1]);
        MmaBf16(o[m][n + 1], a, b[n / 2][2], b[n / 2][3]);
      }
    }
  }
}

// Epilogue: one split -> out_latent = O / d and lse = m + ln d; several -> O and (m, d) to the
// workspace. final_state[row] = (m, d) of each head; rows past `heads` are dropped.
__device__ __forceinline__ void StoreOutput(const MlaDecodeParams& p, const SplitArgs& split,
                                            const CtaWork& w, const float2* final_state,
                                            int col0, int lane,
                                            const float (&o)[kRowTiles][kOutTiles][4]) {
  const bool one_split = split.num_splits == 1;
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = m * kMmaM + lane / 4 + 8 * r;
      const int64_t head = w.head0 + row;
      if (head >= p.dims.heads) continue;
      const SoftmaxState state{final_state[row].x, final_state[row].y};
      const int64_t out_row = w.token * p.dims.heads + head;
      const float factor = one_split ? state.InverseSum() : 1.0f;
      const int64_t slot = one_split ? out_row : blockIdx.y * split.tokens * p.dims.heads + out_row;
      float* dst = (one_split ? p.out_latent : split.partial_out) + slot * kDLatent + col0;
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n) {
        *reinterpret_cast<float2*>(dst + n * kMmaN + 2 * (lane % 4)) =
            make_float2(o[m][n][2 * r] * factor, o[m][n][2 * r + 1] * factor);
      }
      if (col0 == 0 && lane % 4 == 0) {
        if (!one_split) {
          split.partial_state[slot] = make_float2(state.m, state.d);
        } else if (p.lse != nullptr) {
          p.lse[out_row] = state.Lse();
        }
      }
    }
  }
}

}  // namespace warp

namespace {

__global__ void __launch_bounds__(kThreads, 1)
    MlaDecodeSplitKvKernel(const MlaDecodeParams p, const SplitArgs split) {
  extern __shared__ __align__(128) unsigned char smem_bytes[];
  SharedStorage& smem = *reinterpret_cast<SharedStorage*>(smem_bytes);
  const CtaWork w = LocateWork(p, split);
  const int lane = threadIdx.x % 32;
  const int warp_id = threadIdx.x / 32;
  const int row0 = (warp_id % kScoreRowWarps) * kMmaM;      // scores: 16 heads
  const int key_half = warp_id / kScoreRowWarps;            //         and 32 keys of the tile
  const int key0 = key_half * kKeysPerScoreWarp;
  const int col0 = warp_id * kColsPerWarp;                  // values: 64 latent columns

  if (w.num_tiles > 0) {
    LoadCacheTile(p, w, 0, smem.kv[0]);
    thread::CopyAsyncCommit();
  }
  LoadQueries(p, w, smem);

  SoftmaxState state[2];  // heads row0 + g and row0 + g + 8 (identical in both key halves)
  float o[kRowTiles][kOutTiles][4];
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m) {
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.0f;
  }

  for (int tile = 0; tile < w.num_tiles; ++tile) {
    thread::CopyAsyncWait<0>();  // this tile is the only copy in flight
    __syncthreads();  // the tile (and the queries) are visible; the previous tile is consumed
    if (tile + 1 < w.num_tiles) {  // prefetch the next tile into the other stage
      LoadCacheTile(p, w, tile + 1, smem.kv[(tile + 1) % kStages]);
      thread::CopyAsyncCommit();
    }
    const Row* kv = smem.kv[tile % kStages];
    const int64_t valid = w.key_end - (w.key_begin + static_cast<int64_t>(tile) * kKeysPerTile);

    float s[kScoreTiles][4];
    SoftmaxState part[2];
    warp::ComputeScores(smem.q, kv, row0, key0, lane, s);                 // S = Q K^T
    warp::PartialSoftmax(s, key0, valid, p.softmax_scale, lane, part);    // (m, d) of 32 keys
    if (lane % 4 == 0) {
      smem.part[key_half][row0 + lane / 4] = make_float2(part[0].m, part[0].d);
      smem.part[key_half][row0 + lane / 4 + 8] = make_float2(part[1].m, part[1].d);
    }
    __syncthreads();  // both key halves' partial states are visible

    float factor[2], rescale[2];
    warp::MergeTile(smem.part, row0, key_half, lane, state, factor, rescale);  // (m, d) update
    warp::StoreWeights(s, factor, row0, key0, lane, smem.p);                  // P = e^(S - m)
    if (key_half == 0 && lane % 4 == 0) {
      smem.rescale[row0 + lane / 4] = rescale[0];
      smem.rescale[row0 + lane / 4 + 8] = rescale[1];
    }
    __syncthreads();  // P and the rescale factors are visible

    warp::AccumulateValues(smem.p, kv, smem.rescale, col0, lane, o);      // O = O e^(m-m') + P V
  }

  __syncthreads();  // every warp is done reading smem.part
  if (key_half == 0 && lane % 4 == 0) {
    smem.part[0][row0 + lane / 4] = make_float2(state[0].m, state[0].d);
    smem.part[0][row0 + lane / 4 + 8] = make_float2(state[1].m, state[1].d);
  }
  __syncthreads();  // every head's final (m, d) is visible
  warp::StoreOutput(p, split, w, smem.part[0], col0, lane, o);
}

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

absl::Status Validate(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                      const void* workspace) {
  const MlaDims& dims = params.dims;
  if (dims.d_latent != kDLatent || dims.d_rope != kDRope) {
    return absl::UnimplementedError(absl::StrCat(
        "MlaDecodeAttention: dims.d_latent must be ", kDLatent, " and dims.d_rope ", kDRope,
        ", got ", dims.d_latent, " and ", dims.d_rope));
  }
  if (params.cache.d_latent != kDLatent || params.cache.d_rope != kDRope) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaDecodeAttention: cache.d_latent/d_rope must equal dims (", kDLatent, "/", kDRope,
        "), got ", params.cache.d_latent, "/", params.cache.d_rope));
  }
  if (plan.heads != dims.heads || dims.heads <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("MlaDecodeAttention: plan.heads is ",
                                                   plan.heads, " but dims.heads is ", dims.heads));
  }
  if (plan.num_splits < 1 || plan.num_splits > 65535 ||
      (plan.num_splits > 1 && (plan.keys_per_split <= 0 || plan.keys_per_split % kKeysPerTile))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaDecodeAttention: plan.num_splits must be in [1, 65535] and plan.keys_per_split a "
        "positive multiple of ", kKeysPerTile, ", got ", plan.num_splits, " and ",
        plan.keys_per_split));
  }
  if (plan.num_splits > 1 && (workspace == nullptr || !Aligned16(workspace))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaDecodeAttention: the plan has ", plan.num_splits,
        " splits and needs a 16-byte aligned workspace of ", plan.workspace_bytes, " bytes"));
  }
  if (!Aligned16(params.q_abs) || !Aligned16(params.cache.data) || !Aligned16(params.out_latent)) {
    return absl::InvalidArgumentError(
        "MlaDecodeAttention: q_abs, cache.data and out_latent must be 16-byte aligned");
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace mla_decode

absl::Status MlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                void* workspace, cudaStream_t stream) {
  using namespace mla_decode;  // NOLINT: the kernel's own constants
  if (absl::Status s = Validate(params, plan, workspace); !s.ok()) return s;
  if (plan.tokens == 0) return absl::OkStatus();

  SplitArgs split;
  split.keys_per_split = plan.keys_per_split;
  split.num_splits = plan.num_splits;
  split.tokens = plan.tokens;
  if (plan.num_splits > 1) {
    split.partial_out = static_cast<float*>(workspace);
    split.partial_state = reinterpret_cast<float2*>(split.partial_out + plan.partial_out_floats());
  }
  const int64_t head_groups = (params.dims.heads + kHeadsPerCta - 1) / kHeadsPerCta;
  const dim3 grid(static_cast<unsigned>(plan.tokens * head_groups),
                  static_cast<unsigned>(plan.num_splits));
  constexpr int kSmemBytes = sizeof(SharedStorage);
  MLA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      MlaDecodeSplitKvKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  MlaDecodeSplitKvKernel<<<grid, kThreads, kSmemBytes, stream>>>(params, split);
  if (absl::Status s = LaunchStatus("MlaDecodeSplitKvKernel"); !s.ok()) return s;
  if (plan.num_splits == 1) return absl::OkStatus();
  return MlaDecodeCombine(plan, workspace, params.out_latent, params.lse, stream);
}

}  // namespace mla::kernels::cuda
