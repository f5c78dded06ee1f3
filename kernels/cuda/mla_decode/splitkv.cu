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
// this one is used). Each warp, per block:
//   S[16 x 64]  = Q_w K^T                    (36 k-steps of 16 over the 576-wide key)
//   softmax     : (m, d) <- Merge((m, d), (max S, sum exp(S - max S)))   SoftmaxState, fp32
//   O[16 x 256] = O * exp(m_old - m_new) + P V_cols,  P = exp(S - m_new) in bf16, V = K[:, :512]
// P never leaves registers: the accumulator layout of S is the A-operand layout of P V.
// Keys past the split's end (and past the row's position) get score -inf, and their smem rows
// are zero-filled instead of loaded, so NaN in unused cache slots cannot reach the sums.
// With one split, out = O / d and lse are written here; with several, the unnormalised O and
// (m, d) go to the workspace and combine.cu merges them.
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

using Row = __nv_bfloat16[kSmemStride];  // one padded 576-wide row in shared memory

// Every piece of the kernel's shared memory (STYLE.md T3): 224,256 bytes.
struct SharedStorage {
  Row q[kHeadsPerCta];                // this CTA's queries, bf16
  Row kv[kStages][kKeysPerTile];      // cache tiles (keys; the values are their first 512)
};

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
    *reinterpret_cast<uint2*>(&smem.q[row][col]) = make_uint2(warp::PackBf16(v.x, v.y),
                                                              warp::PackBf16(v.z, v.w));
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
    thread::CopyAsync16(&dst[key][col], src + key * kDCache + col, key < valid);
  }
}

}  // namespace

// The kernel's warp-level steps sit beside the primitives of warp_mma.cuh (namespace warp).
namespace warp {

// S[16 x 64] = Q[row0 .. row0+15, :] K^T over the 576-wide keys.
__device__ __forceinline__ void ComputeScores(const Row* q, const Row* kv, int row0, int lane,
                                              float (&s)[kScoreTiles][4]) {
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll 4
  for (int k0 = 0; k0 < kDCache; k0 += kMmaK) {
    uint32_t a[4];  // Q rows (lane % 16), cols k0 + 8 (lane / 16)
    LoadMatrixX4(a, &q[row0 + lane % 16][k0 + (lane / 16) * 8]);
#pragma unroll
    for (int n = 0; n < kScoreTiles; n += 2) {
      uint32_t b[4];  // K rows = keys 8n + lane % 8 (+8 for lanes 16..31), cols k0 (+8 for lanes 8..15, 24..31)
      LoadMatrixX4(b, &kv[n * kMmaN + lane % 8 + (lane / 16) * 8][k0 + ((lane / 8) % 2) * 8]);
      MmaBf16(s[n], a, b[0], b[1]);
      MmaBf16(s[n + 1], a, b[2], b[3]);
    }
  }
}

// Online softmax over one tile, for this lane's rows g and g + 8 (r = 0, 1):
//   s <- scale * s (-inf for keys >= valid);  tile state (max s, sum exp(s - max s));
//   Merge into state[r];  s <- exp(s - m_new) (the weights P);  rescale[r] = exp(m_old - m_new).
__device__ __forceinline__ void SoftmaxTile(float (&s)[kScoreTiles][4], int64_t valid,
                                            float scale, int lane, SoftmaxState (&state)[2],
                                            float (&rescale)[2]) {
  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float tile_max = -INFINITY;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = n * kMmaN + 2 * t + e;
        const float x = key < valid ? s[n][2 * r + e] * scale : -INFINITY;
        s[n][2 * r + e] = x;
        tile_max = fmaxf(tile_max, x);
      }
    }
    tile_max = QuadMax(tile_max);  // key 0 of a tile is always valid: finite
    float tile_sum = 0.0f;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float w = expf(s[n][2 * r + e] - tile_max);
        s[n][2 * r + e] = w;
        tile_sum += w;
      }
    }
    tile_sum = QuadSum(tile_sum);
    const SoftmaxRescale f = state[r].Merge(SoftmaxState{tile_max, tile_sum});
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
      s[n][2 * r] *= f.theirs;  // exp(s - tile_max) * exp(tile_max - m_new) = exp(s - m_new)
      s[n][2 * r + 1] *= f.theirs;
    }
    rescale[r] = f.mine;
  }
}

// O <- O * exp(m_old - m_new), rows g (r = 0) and g + 8 (r = 1).
__device__ __forceinline__ void ScaleAccumulator(float (&o)[kOutTiles][4],
                                                 const float (&rescale)[2]) {
#pragma unroll
  for (int n = 0; n < kOutTiles; ++n) {
    o[n][0] *= rescale[0];
    o[n][1] *= rescale[0];
    o[n][2] *= rescale[1];
    o[n][3] *= rescale[1];
  }
}

// O[16 x 256] += P[16 x 64] V[64 x col0 .. col0+255], V = the tile's first 512 columns.
__device__ __forceinline__ void AccumulateValues(const float (&p)[kScoreTiles][4], const Row* kv,
                                                 int col0, int lane, float (&o)[kOutTiles][4]) {
#pragma unroll
  for (int k = 0; k < kScoreTiles / 2; ++k) {  // keys 16k .. 16k + 15
    // The C layout of score tiles 2k, 2k+1 is the A layout of P's k-th 16-key step.
    const uint32_t a[4] = {PackBf16(p[2 * k][0], p[2 * k][1]), PackBf16(p[2 * k][2], p[2 * k][3]),
                           PackBf16(p[2 * k + 1][0], p[2 * k + 1][1]),
                           PackBf16(p[2 * k + 1][2], p[2 * k + 1][3])};
#pragma unroll
    for (int n = 0; n < kOutTiles; n += 2) {
      uint32_t b[4];  // V rows = keys 16k + lane % 8 (+8 for lanes 8..15, 24..31), cols (+8 for lanes 16..31)
      LoadMatrixX4Trans(
          b, &kv[2 * k * kMmaN + lane % 8 + ((lane / 8) % 2) * 8][col0 + n * kMmaN + (lane / 16) * 8]);
      MmaBf16(o[n], a, b[0], b[1]);
      MmaBf16(o[n + 1], a, b[2], b[3]);
    }
  }
}

// Epilogue: one split -> out_latent = O / d and lse = m + ln d; several -> O and (m, d) to the
// workspace. Rows past `heads` (a partial head group) are dropped.
__device__ __forceinline__ void StoreOutput(const MlaDecodeParams& p, const SplitArgs& split,
                                            const CtaWork& w, int row0, int col0, int lane,
                                            const float (&o)[kOutTiles][4],
                                            const SoftmaxState (&state)[2]) {
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t head = w.head0 + row0 + g + 8 * r;
    if (head >= p.dims.heads) continue;
    const int64_t row = w.token * p.dims.heads + head;
    const bool one_split = split.num_splits == 1;
    const float factor = one_split ? state[r].InverseSum() : 1.0f;
    const int64_t slot = one_split ? row : blockIdx.y * split.tokens * p.dims.heads + row;
    float* dst = (one_split ? p.out_latent : split.partial_out) + slot * kDLatent + col0;
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
      *reinterpret_cast<float2*>(dst + n * kMmaN + 2 * t) =
          make_float2(o[n][2 * r] * factor, o[n][2 * r + 1] * factor);
    }
    if (col0 == 0 && t == 0) {
      if (!one_split) {
        split.partial_state[slot] = make_float2(state[r].m, state[r].d);
      } else if (p.lse != nullptr) {
        p.lse[row] = state[r].Lse();
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
  const int row0 = (warp_id % kRowWarps) * kRowsPerWarp;  // this warp's 16 heads
  const int col0 = (warp_id / kRowWarps) * kColsPerWarp;  // and 256 output columns

  if (w.num_tiles > 0) {
    LoadCacheTile(p, w, 0, smem.kv[0]);
    thread::CopyAsyncCommit();
  }
  LoadQueries(p, w, smem);

  SoftmaxState state[2];
  float o[kOutTiles][4];
#pragma unroll
  for (int n = 0; n < kOutTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

  for (int tile = 0; tile < w.num_tiles; ++tile) {
    if (tile + 1 < w.num_tiles) {  // prefetch the next tile into the other stage
      LoadCacheTile(p, w, tile + 1, smem.kv[(tile + 1) % kStages]);
      thread::CopyAsyncCommit();
      thread::CopyAsyncWait<1>();
    } else {
      thread::CopyAsyncWait<0>();
    }
    __syncthreads();  // this tile (and the queries) are visible to every warp
    const Row* kv = smem.kv[tile % kStages];
    const int64_t valid = w.key_end - (w.key_begin + static_cast<int64_t>(tile) * kKeysPerTile);
    float s[kScoreTiles][4];
    float rescale[2];
    warp::ComputeScores(smem.q, kv, row0, lane, s);                          // S = Q K^T
    warp::SoftmaxTile(s, valid, p.softmax_scale, lane, state, rescale);      // P, (m, d)
    warp::ScaleAccumulator(o, rescale);                                      // O *= e^(m-m')
    warp::AccumulateValues(s, kv, col0, lane, o);                            // O += P V
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  warp::StoreOutput(p, split, w, row0, col0, lane, o, state);
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
