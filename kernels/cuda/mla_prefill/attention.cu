// The MLA prefill's flash attention on the tensor cores (see attention.h; FlashAttention-2's
// scheme: the query tile stays in registers, key tiles stream through shared memory).
//
// Math, sequence s, head h, query row i at position p = ctx - q_len + i, keys j <= p:
//   S = Q K^T,  K_j = [k^N_j ; k^R_j]                  (192-wide dot products)
//   m' = max(m, max_j S_j * c),  c = softmax_scale * log2(e)           (base-2 scores)
//   P_j = 2^(S_j c - m'),  d' = d 2^(m - m') + sum_j P_j,  O' = O 2^(m - m') + P V
//   out = O / d
// Dtypes: q fp32 -> bf16 (rounded when loaded), K^N and V bf16 (the up-projection's output),
// k^R bf16 (the cache's), P rounded to bf16 for P V; S, O, m, d in fp32. d sums the unrounded P.
//
// CTA = 64 query rows of one sequence (a tile, found by OwnerOf in tile_start) x one head; 4
// warps, warp w owns rows [16 w, 16 w + 16) = one mma M. Per key tile of 64:
//   - loader (all 128 threads): K tile [64 x 192] and V tile [64 x 128] bf16 -> shared memory with
//     cp.async, two stages (tile t + 1 in flight while t is computed); keys past the tile's last
//     position are zero-filled (never read from global: the workspace past a sequence may be
//     stale NaN);
//   - S = Q K^T: 12 k-steps x 8 key blocks of mma.m16n8k16; Q from registers (A fragments, loaded
//     once from global fp32), K by ldmatrix (a [key][dim] tile is B^T: no .trans);
//   - causal mask (only where the tile reaches past the warp's first position): S = -inf for
//     key > position;
//   - online softmax on the accumulators: each lane holds 2 rows (g, g + 8) x 16 keys; the row
//     max over the quad by two shuffles;
//   - O += P V: the S accumulators become A fragments (kernels/cuda/warp_mma.cuh), V by
//     ldmatrix.trans; 4 k-steps x 16 value blocks.
// A warp whose 16 rows all lie before the tile's first key skips the tile's math; tiles wholly
// past the CTA's last position are never loaded. Grid (tiles, heads): blockIdx.x counts tiles
// from the last, so each head's longest tiles start first, and a head's CTAs run together
// (its K/V, 2.5 MB at 4096 tokens, stays in L2 across its tiles).
#include "kernels/cuda/mla_prefill/attention.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/mla_prefill/config.h"
#include "kernels/cuda/mla_prefill/ragged.cuh"
#include "kernels/cuda/once_per_device.h"
#include "kernels/cuda/warp_mma.cuh"

namespace mla::kernels::cuda::mla_prefill {
namespace {

// Every piece of the kernel's shared memory (STYLE.md T3): 86,016 bytes.
struct SharedStorage {
  bf16 k[kStages][kTileK][kKPitch];  // [k^N ; k^R] per key, zeros past the last loaded key
  bf16 v[kStages][kTileK][kVPitch];  // v per key, zeros past the last loaded key
};

// The CTA's place in the batch: which rows, which keys.
struct TileRows {
  int64_t token0 = 0;     // token index of the tile's row 0
  int64_t rows = 0;       // rows of the tile that exist (<= kTileQ)
  int64_t first_pos = 0;  // position of row 0; row i sits at first_pos + i
  int64_t row_base = 0;   // first kv / rope row of the sequence
  int64_t num_keys = 0;   // keys 0 .. the tile's last position
};

// cta: all threads. kChunksPerKey 16-byte chunks of each of keys key0 .. key0 + 63 into dst[key]
// (chunk c from source(row, c), row = the key's kv / rope row); keys at or past num_keys are
// zero-filled.
template <int kChunksPerKey, int kPitch, typename Source>
__device__ __forceinline__ void CopyKeyRows(bf16 (&dst)[kTileK][kPitch], const AttentionArgs& args,
                                            const TileRows& t, int64_t key0, Source source) {
  static_assert((kTileK * kChunksPerKey) % kThreads == 0,
                "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < kTileK * kChunksPerKey / kThreads; ++i) {
    const int c = threadIdx.x + i * kThreads;
    const int key = c / kChunksPerKey;
    const int chunk = c % kChunksPerKey;
    const bool valid = key0 + key < t.num_keys;
    const bf16* src = source(t.row_base + key0 + key, chunk);
    thread::CopyAsync16(&dst[key][chunk * kChunk], valid ? src : args.rope, valid);
  }
}

// cta: all threads. K and V rows of keys key0 .. key0 + 63 of head h into `stage`; keys at or past
// num_keys are zero-filled.
__device__ __forceinline__ void LoadKeyTile(SharedStorage& sh, int stage,
                                            const AttentionArgs& args, const TileRows& t,
                                            int64_t h, int64_t key0) {
  constexpr int kNopeChunks = kDNope / kChunk;  // 16 per key from kv
  const int64_t kv_stride = args.heads * kDKv;
  const bf16* kv_head = args.kv + h * kDKv;
  // K: 24 chunks per key, 16 from kv (k^N), 8 from rope.
  CopyKeyRows<kDQk / kChunk>(sh.k[stage], args, t, key0, [&](int64_t row, int chunk) {
    return chunk < kNopeChunks ? kv_head + row * kv_stride + chunk * kChunk
                               : args.rope + row * kDRope + (chunk - kNopeChunks) * kChunk;
  });
  // V: 16 chunks per key from kv.
  CopyKeyRows<kDV / kChunk>(sh.v[stage], args, t, key0, [&](int64_t row, int chunk) {
    return kv_head + row * kv_stride + kDNope + chunk * kChunk;
  });
}

// warp: the A fragments of the warp's 16 query rows (q rounded to bf16), zeros past t.rows.
// Lane 4 g + t holds rows g and g + 8, columns 16 kk + {2t, 2t+1, 2t+8, 2t+9}.
__device__ __forceinline__ void LoadQueryFragments(const AttentionArgs& args, const TileRows& t,
                                                   int64_t h, int warp, int lane,
                                                   uint32_t (&q)[kQkSteps][4]) {
  const int g = lane / 4;
  const int col = 2 * (lane % 4);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = warp * kRowsPerWarp + g + 8 * r;
    const bool valid = i < t.rows;
    const float* row = args.q + ((t.token0 + (valid ? i : 0)) * args.heads + h) * kDQk;
#pragma unroll
    for (int kk = 0; kk < kQkSteps; ++kk) {
      const float2 lo = valid ? *reinterpret_cast<const float2*>(row + kk * kMmaK + col)
                              : make_float2(0.0f, 0.0f);
      const float2 hi = valid ? *reinterpret_cast<const float2*>(row + kk * kMmaK + 8 + col)
                              : make_float2(0.0f, 0.0f);
      q[kk][r] = PackBf16x2(lo.x, lo.y);
      q[kk][2 + r] = PackBf16x2(hi.x, hi.y);
    }
  }
}

// warp: s = Q K^T for the tile's 64 keys (s[j]: key block j, C fragment layout).
__device__ __forceinline__ void QueryKeyScores(const uint32_t (&q)[kQkSteps][4],
                                               const bf16 (&k)[kTileK][kKPitch], int lane,
                                               float (&s)[kKeyBlocks][4]) {
  // ldmatrix.x4 matrices: (keys +0..7, dims +0..7), (keys +0..7, dims +8..15), (keys +8..15,
  // dims +0..7), (keys +8..15, dims +8..15) -> B regs 0, 1 of key block 2p, then of 2p + 1.
  const int key_in_pair = (lane / 16) * 8 + lane % 8;
  const int dim_offset = ((lane / 8) % 2) * 8;
#pragma unroll
  for (int j = 0; j < kKeyBlocks; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < kQkSteps; ++kk) {
#pragma unroll
    for (int p = 0; p < kKeyBlocks / 2; ++p) {
      uint32_t b[4];
      warp::LoadMatrixX4(b, &k[2 * kMmaN * p + key_in_pair][kk * kMmaK + dim_offset]);
      warp::MmaBf16(s[2 * p], q[kk], b[0], b[1]);
      warp::MmaBf16(s[2 * p + 1], q[kk], b[2], b[3]);
    }
  }
}

// warp: s = -inf where key > position. Element e of key block j is row g + 8 (e / 2) of the warp,
// key key0 + 8 j + 2t + e % 2; warp_pos is the position of the warp's row 0.
__device__ __forceinline__ void MaskCausal(float (&s)[kKeyBlocks][4], int64_t key0,
                                           int64_t warp_pos, int lane) {
  const int g = lane / 4;
  const int col = 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < kKeyBlocks; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t key = key0 + kMmaN * j + col + e % 2;
      const int64_t position = warp_pos + g + 8 * (e / 2);
      if (key > position) s[j][e] = -INFINITY;
    }
  }
}

// warp: the online-softmax step. On entry s holds raw scores, on exit P = 2^(s c - m') (fp32);
// m (base 2, scaled), d (this lane's partial sum over its keys) and o are rescaled to m'.
// Rows r = 0, 1 are the lane's rows g and g + 8 (elements 2r, 2r + 1 of each fragment).
__device__ __forceinline__ void OnlineSoftmax(float (&s)[kKeyBlocks][4], float scale_log2,
                                              float (&m)[2], float (&d)[2],
                                              float (&o)[kVBlocks][4]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    // m' = max(m, c max_j s_j) (c > 0, so scaling commutes with the max).
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKeyBlocks; ++j) {
      tile_max = fmaxf(tile_max, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
    }
    const float m_new = fmaxf(m[r], cuda::warp::QuadMax(tile_max) * scale_log2);
    // A row with no visible key yet keeps m' = -inf; subtract 0 then, so no -inf - -inf.
    const float base = m_new == -INFINITY ? 0.0f : m_new;
    const float rescale = exp2f(m[r] - base);  // 0 while the row was empty
    m[r] = m_new;
    d[r] *= rescale;
#pragma unroll
    for (int n = 0; n < kVBlocks; ++n) {
      o[n][2 * r] *= rescale;
      o[n][2 * r + 1] *= rescale;
    }
    // P_j = 2^(s_j c - m'); masked scores give 2^-inf = 0.
#pragma unroll
    for (int j = 0; j < kKeyBlocks; ++j) {
#pragma unroll
      for (int e = 2 * r; e < 2 * r + 2; ++e) {
        s[j][e] = exp2f(fmaf(s[j][e], scale_log2, -base));
        d[r] += s[j][e];
      }
    }
  }
}

// warp: o += P V, P (fp32 accumulators of S) rounded to bf16 A fragments.
__device__ __forceinline__ void AccumulateValues(const float (&p)[kKeyBlocks][4],
                                                 const bf16 (&v)[kTileK][kVPitch], int lane,
                                                 float (&o)[kVBlocks][4]) {
  // ldmatrix.x4.trans matrices: (keys +0..7, cols +0..7), (keys +8..15, cols +0..7), (keys
  // +0..7, cols +8..15), (keys +8..15, cols +8..15) -> B regs 0, 1 of value block 2n, then 2n + 1.
  const int key_offset = ((lane / 8) % 2) * 8 + lane % 8;
  const int col_in_pair = (lane / 16) * 8;
#pragma unroll
  for (int kk = 0; kk < kPvSteps; ++kk) {
    // Keys 16 kk .. 16 kk + 15 = key blocks 2 kk and 2 kk + 1 of P.
    const uint32_t a[4] = {PackBf16x2(p[2 * kk][0], p[2 * kk][1]),
                           PackBf16x2(p[2 * kk][2], p[2 * kk][3]),
                           PackBf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                           PackBf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int n = 0; n < kVBlocks / 2; ++n) {
      uint32_t b[4];
      warp::LoadMatrixX4Trans(b, &v[kk * kMmaK + key_offset][2 * kMmaN * n + col_in_pair]);
      warp::MmaBf16(o[2 * n], a, b[0], b[1]);
      warp::MmaBf16(o[2 * n + 1], a, b[2], b[3]);
    }
  }
}

// warp: out = o / d for the warp's rows that exist; d summed over the quad first.
__device__ __forceinline__ void StoreOutput(const AttentionArgs& args, const TileRows& t,
                                            int64_t h, int warp, int lane,
                                            const float (&o)[kVBlocks][4], const float (&d)[2]) {
  const int g = lane / 4;
  const int col = 2 * (lane % 4);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inv_sum = 1.0f / cuda::warp::QuadSum(d[r]);
    const int64_t i = warp * kRowsPerWarp + g + 8 * r;
    if (i >= t.rows) continue;
    float* out = args.out + ((t.token0 + i) * args.heads + h) * kDV + col;
#pragma unroll
    for (int n = 0; n < kVBlocks; ++n) {
      *reinterpret_cast<float2*>(out + kMmaN * n) =
          make_float2(o[n][2 * r] * inv_sum, o[n][2 * r + 1] * inv_sum);
    }
  }
}

__global__ void __launch_bounds__(kThreads, 2) AttentionKernel(const AttentionArgs args) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  SharedStorage& sh = *reinterpret_cast<SharedStorage*>(shared_bytes);
  const int64_t num_seqs = args.batch.num_seqs;
  const int64_t num_tiles_total = args.tile_start[num_seqs];
  if (blockIdx.x >= num_tiles_total) return;
  const int64_t tile = num_tiles_total - 1 - blockIdx.x;  // the last (longest) tiles first
  const int64_t h = blockIdx.y;
  const int64_t s = OwnerOf(args.tile_start, num_seqs, tile);
  const int64_t q_begin = args.batch.q_start[s];
  const int64_t q_len = args.batch.q_start[s + 1] - q_begin;
  const int64_t ctx = args.batch.context_lens[s];
  TileRows t;
  t.row_base = args.ctx_start[s];
  if (t.row_base + ctx > args.context_tokens) return;  // past the plan: the output stays unwritten
  const int64_t r0 = (tile - args.tile_start[s]) * kTileQ;
  t.token0 = q_begin + r0;
  t.rows = q_len - r0 < kTileQ ? q_len - r0 : kTileQ;
  t.first_pos = ctx - q_len + r0;
  t.num_keys = t.first_pos + t.rows;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warp_pos = t.first_pos + warp * kRowsPerWarp;  // position of the warp's row 0
  const int64_t key_tiles = (t.num_keys + kTileK - 1) / kTileK;

  LoadKeyTile(sh, 0, args, t, h, 0);
  thread::CommitAsyncGroup();
  uint32_t q[kQkSteps][4];
  LoadQueryFragments(args, t, h, warp, lane, q);

  float o[kVBlocks][4];
#pragma unroll
  for (int n = 0; n < kVBlocks; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float d[2] = {0.0f, 0.0f};
  for (int64_t kt = 0; kt < key_tiles; ++kt) {
    const int stage = static_cast<int>(kt % kStages);
    // Tile kt + 1 into the other stage (its readers finished at the end of iteration kt - 1).
    if (kt + 1 < key_tiles) {
      LoadKeyTile(sh, (stage + 1) % kStages, args, t, h, (kt + 1) * kTileK);
      thread::CommitAsyncGroup();
      thread::WaitAsyncGroups<1>();  // tile kt landed (this thread's part)
    } else {
      thread::WaitAsyncGroups<0>();
    }
    __syncthreads();  // every thread's part of tile kt is visible
    const int64_t key0 = kt * kTileK;
    if (key0 <= warp_pos + kRowsPerWarp - 1) {  // some row of the warp sees a key of the tile
      float s_frag[kKeyBlocks][4];
      QueryKeyScores(q, sh.k[stage], lane, s_frag);  // S = Q K^T
      if (key0 + kTileK - 1 > warp_pos) {            // a diagonal tile: keys j <= p only
        MaskCausal(s_frag, key0, warp_pos, lane);
      }
      OnlineSoftmax(s_frag, args.scale_log2, m, d, o);  // P = 2^(S c - m'); m, d, O rescaled
      AccumulateValues(s_frag, sh.v[stage], lane, o);   // O += P V
    }
    __syncthreads();  // the stage is free for tile kt + 2
  }
  StoreOutput(args, t, h, warp, lane, o, d);
}

}  // namespace

absl::Status LaunchPrefillAttention(const AttentionArgs& args, int64_t max_tiles,
                                    cudaStream_t stream) {
  constexpr int kSmemBytes = sizeof(SharedStorage);
  static PerDeviceSlots smem_opt_in;
  if (absl::Status s = OptInSharedMemory(smem_opt_in, AttentionKernel, kSmemBytes); !s.ok()) {
    return s;
  }
  const dim3 grid(static_cast<unsigned>(max_tiles), static_cast<unsigned>(args.heads));
  AttentionKernel<<<grid, kThreads, kSmemBytes, stream>>>(args);
  return LaunchStatus("MlaPrefill AttentionKernel");
}

}  // namespace mla::kernels::cuda::mla_prefill
