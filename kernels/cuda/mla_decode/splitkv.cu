// Absorbed MLA decode attention on Hopper: TMA-fed, warp-specialised, wgmma (sm_90a).
//
// Math (MODEL.md §3.3 steps 4-5), for query row t (position p) and head h, keys j <= p:
//   s_j = scale * q_abs[t, h] . K_j            K_j = cache row of key j: [c_j (512) ; k^R_j (64)]
//   out_latent[t, h] = sum_j softmax(s)_j c_j, lse[t, h] = m + ln d   (online softmax, m and d)
// Shapes: q_abs [tokens, heads, 576] f32; cache [num_blocks, 64, 576] bf16 (paged by
// block_tables); out_latent [tokens, heads, 512] f32; lse [tokens, heads] f32.
//
// Grid: one CTA per (lane, head group) of the plan (plan.h), or of a fixed launch's grid_lanes
// lanes, whose CTAs past the plan's lanes exit at once; a lane is a run of (token, key tile)
// work, walked in order as "pieces" (one token's tiles within the lane). Each CTA reads its
// lane's bounds from the device plan once, first thing (mla_decode.h, MlaDecodeLaunch). Per CTA
// (config.h): one warp of warpgroup 1 streams the pieces' cache blocks (64 keys x 576) into a
// two-stage shared-memory ring with TMA (9 boxes of 64 x 64, 128-byte swizzled), on full/empty
// mbarriers; warpgroup 0 computes per tile
//   S = Q K^T                        36 wgmma m64n64k16, Q (pre-scaled by scale log2e) and K
//                                    from shared memory
//   m' = the row's reference max (OnlineSoftmax), P = 2^(S - m'), d = d 2^(m - m') + sum P
//                                    (fp32, base 2)
//   O[:, :256] = O 2^(m - m') + P V[:, :256]       4 wgmma m64n256k16, P from registers
// and hands P (bf16, in the tile's rope chunk) and 2^(m - m') to warpgroup 1 through shared
// memory (named barriers), which computes O[:, 256:] the same way with P from shared memory.
// V is the first 512 columns of the same shared-memory tile, read as an MN-major operand, so the
// cache is read once.
// Keys past a row's context get score -inf (a select, so NaN in unused slots cannot leak into S),
// and their V rows are zero-filled in shared memory (0 * NaN would).
// A whole piece writes out = O / d and lse; a piece of a cut token writes the unnormalised O and
// (m, d) to its workspace slot, and combine.cu merges them.
//
// Synchronisation (what orders each shared-memory hand-off; tile it = the CTA's it-th tile):
// - cache stage it % 2: TMA (async proxy) writes complete_tx on full[stage], every consumer
//   waits on it before its wgmma reads. Overwrite (tile it + 2): each of the 8 warps arrives on
//   empty[stage] after its own wgmma.wait_group covering its reads of the stage (the PTX ISA
//   defines wait_group's completion for the groups committed by the executing threads; one
//   arrival per warp does not lean on one warp's wait covering its warpgroup's other warps);
//   warpgroup 0's generic writes to the stage (rows past the context zero-filled, P) are
//   fenced (fence.proxy.async) before its warps' arrivals (kBarScoreGroup orders the zero-fill
//   of every warp before them).
// - smem.q: written (generic) and read (wgmma) by warpgroup 0 only: fence.proxy.async +
//   kBarScoreGroup before the reads; the rewrite for the next piece follows its own Wait<0>.
// - P of tile it, in chunk 8 (the rope part) of its stage: written by warpgroup 0 after its own
//   wait for S of the tile (the chunk's only other reader), published by fence.proxy.async +
//   kBarPFull, read by warpgroup 1's wgmma; rewritten only for tile it + 2, after the stage's
//   refill, which waits for warpgroup 1's release of the stage (so P needs no barrier of its
//   own, nor a buffer: 8 KB less shared memory).
// - smem.rescale / row_state (st.shared by warpgroup 0, ld.shared by warpgroup 1):
//   slot it % 2, written before and read after kBarPFull of tile it, on which BOTH warpgroups
//   sync. The slot's next write (tile it + 2) follows kBarPFull of tile it + 1, which warpgroup 1
//   reaches only after its reads of tile it: every hand-off of these factors is ordered by a
//   barrier that both sides wait on.
// Until 2026-11-28 the factors had one slot, written after a "P consumed" barrier and published
// with a bar.arrive on kBarPFull; that was already correct by the PTX ISA (a bar.arrive orders
// the arriving thread's earlier accesses before the completion of the barrier that others
// bar.sync on). compute-sanitizer's racecheck reports these slot accesses (warpgroup 1's loads
// against warpgroup 0's stores) as hazards in every form they have had: one slot and
// bar.arrive (160 errors, 53464d9), two slots and a two-sided bar.sync (139, a050529), generic
// accesses (95 in one test, da52937), ld/st.shared (93, 3428c12). It does not credit this
// named-barrier ordering, so scripts/gpu_test.sh leaves this kernel's test out of racecheck
// (bench/RESULTS.md, "Decode racecheck hazards" and run 21); the test checks that plain launches,
// fixed launches and graph replays agree bit for bit instead.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/mla_decode/async_copy.cuh"
#include "kernels/cuda/mla_decode/cache_tensor_map.h"
#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/lane_walk.cuh"
#include "kernels/cuda/mla_decode/launch_checks.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/mla_decode/warpgroup.cuh"
#include "kernels/cuda/once_per_device.h"
#include "kernels/mla_params.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cuda {
namespace mla_decode {

using Chunk = __nv_bfloat16[kKeysPerTile][kChunkCols];  // 64 rows x 128 bytes, swizzled

// Every piece of the kernel's shared memory (STYLE.md T3). 223,232 bytes.
struct alignas(kSwizzleAtomBytes) SharedStorage {
  Chunk q[kChunks];                 // the CTA's 64 queries, bf16, 9 column chunks
  Chunk kv[kStages][kChunks];       // cache tiles: keys; values = chunks 0..7; once S of the
                                    // tile is done, chunk 8 holds its P (bf16, K-major)
  // Per tile it, in slot it % 2 (see "Synchronisation" above: a slot is rewritten two tiles
  // later, after a kBarPFull that both warpgroups wait on).
  float rescale[kHandoffSlots][kHeadsPerCta];     // 2^(m - m') of the tile, per head
  float2 row_state[kHandoffSlots][kHeadsPerCta];  // (m, d) per head after a piece's last tile
  uint64_t full[kStages];           // the stage's tile has landed (TMA transaction count)
  uint64_t empty[kStages];          // all 8 warps' wgmma reads of the stage are complete
};
constexpr int kSmemBytes = sizeof(SharedStorage) + kSwizzleAtomBytes;  // + alignment slack
static_assert(kSmemBytes <= 232448, "more than an H100 block's shared memory");

struct KernelArgs {
  MlaDecodeParams p;
  const MlaDecodeSchedule* schedule = nullptr;  // the device plan's (read once per CTA)
  int32_t head_groups = 1;            // ceil(heads / 64): fixed by heads, so not a plan read
  float scale_log2 = 0.0f;            // softmax_scale * log2(e)
  float* partial_out = nullptr;       // [slots, heads, 512]; null when nothing can be cut
  float2* partial_state = nullptr;    // [slots, heads]: (m, d)
};

namespace warp {

// The producer: issues the lane's tiles in order, tile i into stage i % 2 once all 8 warps have
// released the tile that was there (empty[stage]: one arrival per warp after its own wgmma wait).
// Warp-collective; lane 0 issues.
class TileProducer {
 public:
  __device__ __forceinline__ TileProducer(const CUtensorMap& cache_map, const KernelArgs& a,
                                          const LaneSpan& span, int lane_index,
                                          SharedStorage& smem)
      : map_(cache_map), batch_(a.p.batch), smem_(smem), walk_(span, lane_index) {}

  // Issues the next tile of the lane, if any (9 TMA boxes of 64 x 64 onto full[stage]).
  __device__ __forceinline__ void IssueNext() {
    while (tile_ >= piece_.tile_end) {
      if (done_ || !walk_.Next(batch_, piece_)) {
        done_ = true;
        return;
      }
      tile_ = piece_.tile_begin;
      table_ = batch_.block_tables + piece_.seq * batch_.max_blocks_per_seq;
    }
    if (threadIdx.x % 32 == 0) {
      const int stage = it_ % kStages;
      const int32_t row = table_[tile_] * kKeysPerTile;  // loaded while the stage drains
      if (it_ >= kStages) thread::MbarrierWait(&smem_.empty[stage], ((it_ / kStages) + 1) & 1);
      thread::MbarrierArriveExpectTx(&smem_.full[stage], kTileBytes);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        thread::TmaLoad2d(smem_.kv[stage][c], &map_, c * kChunkCols, row, &smem_.full[stage]);
      }
    }
    __syncwarp();  // reconverge before the warpgroup's next aligned barrier / wgmma
    ++tile_;
    ++it_;
  }

 private:
  const CUtensorMap& map_;
  const RaggedBatch& batch_;
  SharedStorage& smem_;
  LaneWalk walk_;
  Piece piece_;               // tile_end = 0 until the first Next
  const int32_t* table_ = nullptr;
  int32_t tile_ = 0;
  int it_ = 0;
  bool done_ = false;
};

}  // namespace warp

namespace warpgroup {

// Row of this thread's D / A fragments: r0 and r0 + 8 (warpgroup.cuh).
__device__ __forceinline__ int FragmentRow(int r) {
  const int t = threadIdx.x % kWarpgroupThreads;
  return 16 * (t / 32) + (t % 32) / 4 + 8 * r;
}

// Byte offset of 16-byte piece `piece` of row `row` in a swizzled chunk.
__device__ __forceinline__ uint32_t SwizzledOffset(int row, int piece) {
  return row * kSwizzleBytes + ((piece ^ (row % kSwizzleRows)) * 16);
}

// q_abs rows of heads 64 g .. 64 g + 63 of `token`, times scale_log2 (so that S comes out in
// base-2 softmax units), -> bf16 in smem.q (zeros past `heads`).
// Loads first, in batches of kBatch float4 per thread, then the converted stores: the compiler
// may not move a global load above a store through a generic pointer, so a load-convert-store
// loop runs one load at a time (run 5: ~50 us per query tile).
__device__ __forceinline__ void LoadQueries(const KernelArgs& a, int32_t token, int group,
                                            SharedStorage& smem) {
  const MlaDecodeParams& p = a.p;
  const float scale_log2 = a.scale_log2;
  constexpr int kVecsPerRow = kDCache / 4;  // float4s
  constexpr int kVecs = kHeadsPerCta * kVecsPerRow / kWarpgroupThreads;  // 72 per thread
  constexpr int kBatch = 24;
  static_assert(kVecs % kBatch == 0, "whole batches");
  const int t = threadIdx.x % kWarpgroupThreads;
  const float* q_abs = p.q_abs;
  unsigned char* q_bytes = reinterpret_cast<unsigned char*>(smem.q);
#pragma unroll 1
  for (int b = 0; b < kVecs; b += kBatch) {
    float4 v[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int idx = t + (b + i) * kWarpgroupThreads;
      const int row = idx / kVecsPerRow;
      const int64_t head = int64_t{group} * kHeadsPerCta + row;
      v[i] = head < p.dims.heads
                 ? __ldg(reinterpret_cast<const float4*>(
                       q_abs + (token * p.dims.heads + head) * kDCache + (idx % kVecsPerRow) * 4))
                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int idx = t + (b + i) * kWarpgroupThreads;
      const int row = idx / kVecsPerRow;
      const int col = (idx % kVecsPerRow) * 4;
      const uint32_t offset = (col / kChunkCols) * kChunkBytes +
                              SwizzledOffset(row, (col % kChunkCols) / 8) + (col % 8) * 2;
      *reinterpret_cast<uint2*>(q_bytes + offset) =
          make_uint2(PackBf16x2(v[i].x * scale_log2, v[i].y * scale_log2),
                     PackBf16x2(v[i].z * scale_log2, v[i].w * scale_log2));
    }
  }
}

// S[64 x 64] = Q[64 x 576] K[64 x 576]^T: 36 K steps over the 9 chunks of Q and of the tile.
__device__ __forceinline__ void ComputeScores(const SharedStorage& smem, int stage,
                                              float (&s)[kScoreRegs]) {
  const uint64_t q_desc = Descriptor(SharedAddress(smem.q), 16, kSwizzleAtomBytes);
  const uint64_t k_desc = Descriptor(SharedAddress(smem.kv[stage]), 16, kSwizzleAtomBytes);
  Fence();
#pragma unroll
  for (int k = 0; k < kDCache / kMmaK; ++k) {
    const uint32_t offset = (k / 4) * kChunkBytes + (k % 4) * kMmaK * 2;  // bytes
    MmaSs64x64(s, q_desc + (offset >> 4), k_desc + (offset >> 4), k > 0);
  }
  Commit();
  Wait<0>();
  FenceRegisters(s);
}

// Online softmax of one tile, base 2 (S is already scaled: LoadQueries): s <- 2^(s - m')
// (0 for keys >= valid); m <- m' = max(m, row max); d <- d 2^(m - m') + this thread's share of
// the row sums. Returns 2^(m - m') per row in alpha. m and alpha are the same in the 4 lanes of
// a row.
__device__ __forceinline__ void OnlineSoftmax(float (&s)[kScoreRegs], int valid, float (&m)[2],
                                              float (&d)[2], float (&alpha)[2]) {
  if (valid < kKeysPerTile) {  // the CTA's last tile of a row only (uniform)
    const int quad_col = 2 * (threadIdx.x % 4);
#pragma unroll
    for (int e = 0; e < kScoreRegs; ++e) {
      if (8 * (e / 4) + quad_col + e % 2 >= valid) s[e] = -INFINITY;
    }
  }
  float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int e = 0; e < kScoreRegs; ++e) row_max[(e / 2) % 2] = fmaxf(row_max[(e / 2) % 2], s[e]);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float m_new = fmaxf(m[r], cuda::warp::QuadMax(row_max[r]));
    alpha[r] = thread::Exp2(m[r] - m_new);  // 0 on the first tile (m = -inf)
    m[r] = m_new;
    d[r] *= alpha[r];
  }
#pragma unroll
  for (int e = 0; e < kScoreRegs; ++e) {
    const int r = (e / 2) % 2;
    s[e] = thread::Exp2(s[e] - m[r]);
    d[r] += s[e];
  }
}

// O <- O * alpha[row] (skipped when every row of the warp keeps its max).
__device__ __forceinline__ void RescaleOutput(float (&o)[kOutRegs], const float (&alpha)[2]) {
  if (!__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) return;
#pragma unroll
  for (int e = 0; e < kOutRegs; ++e) o[e] *= alpha[(e / 2) % 2];
}

// Rows valid .. 63 of the tile's value chunks <- 0 (their slots may hold anything, even NaN).
__device__ __forceinline__ void ZeroInvalidValueRows(SharedStorage& smem, int stage, int valid) {
  unsigned char* tile = reinterpret_cast<unsigned char*>(smem.kv[stage]);
  constexpr int kPiecesPerRow = 2 * kValueChunks * kSwizzleBytes / 16;  // 64 pieces of 16 bytes
  for (int idx = threadIdx.x % kWarpgroupThreads; idx < (kKeysPerTile - valid) * kPiecesPerRow;
       idx += kWarpgroupThreads) {
    const int row = valid + idx / kPiecesPerRow;
    const int chunk = (idx % kPiecesPerRow) / 8;
    *reinterpret_cast<uint4*>(tile + chunk * kChunkBytes + row * kSwizzleBytes + (idx % 8) * 16) =
        make_uint4(0, 0, 0, 0);
  }
}

// P in bf16 pairs: D elements 8k .. 8k + 7 are the A registers of K step k (warpgroup.cuh).
__device__ __forceinline__ void PackWeights(const float (&s)[kScoreRegs],
                                            uint32_t (&p)[kKeysPerTile / kMmaK][4]) {
#pragma unroll
  for (int k = 0; k < kKeysPerTile / kMmaK; ++k) {
#pragma unroll
    for (int j = 0; j < 4; ++j) p[k][j] = PackBf16x2(s[8 * k + 2 * j], s[8 * k + 2 * j + 1]);
  }
}

// P -> the tile's rope chunk (S, its only reader, is done), row-major over keys, swizzled (a
// K-major wgmma operand). Keys 8i .. 8i + 7 of row r are A register 2 (i % 2) + r of K step i / 2.
__device__ __forceinline__ void StoreWeights(const uint32_t (&p)[kKeysPerTile / kMmaK][4],
                                             SharedStorage& smem, int stage) {
  unsigned char* p_bytes = reinterpret_cast<unsigned char*>(smem.kv[stage][kPChunk]);
  const int quad = threadIdx.x % 4;
#pragma unroll
  for (int i = 0; i < kKeysPerTile / 8; ++i) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      *reinterpret_cast<uint32_t*>(p_bytes + SwizzledOffset(FragmentRow(r), i) + 4 * quad) =
          p[i / 2][2 * (i % 2) + r];
    }
  }
}

// O[64 x 256] += P[64 x 64] V[64 x 256] with P from registers (warpgroup 0, value chunks 0-3).
__device__ __forceinline__ void AccumulateValuesFromRegisters(
    const uint32_t (&p)[kKeysPerTile / kMmaK][4], const SharedStorage& smem, int stage,
    float (&o)[kOutRegs]) {
  const uint64_t v_desc = Descriptor(SharedAddress(smem.kv[stage][0]), kChunkBytes, kSwizzleAtomBytes);
  FenceRegisters(o);
  Fence();
#pragma unroll
  for (int k = 0; k < kKeysPerTile / kMmaK; ++k) {
    MmaRs64x256(o, p[k], v_desc + ((k * kMmaK * kSwizzleBytes) >> 4), 1);
  }
  Commit();
}

// O[64 x 256] += P[64 x 64] V[64 x 256] with P from the tile's rope chunk (warpgroup 1, value
// chunks 4-7).
__device__ __forceinline__ void AccumulateValuesFromShared(const SharedStorage& smem, int stage,
                                                           float (&o)[kOutRegs]) {
  const uint64_t p_desc =
      Descriptor(SharedAddress(smem.kv[stage][kPChunk]), 16, kSwizzleAtomBytes);
  const uint64_t v_desc =
      Descriptor(SharedAddress(smem.kv[stage][kValueChunks]), kChunkBytes, kSwizzleAtomBytes);
  FenceRegisters(o);
  Fence();
#pragma unroll
  for (int k = 0; k < kKeysPerTile / kMmaK; ++k) {
    MmaSs64x256(o, p_desc + ((k * kMmaK * 2) >> 4), v_desc + ((k * kMmaK * kSwizzleBytes) >> 4), 1);
  }
  Commit();
  Wait<0>();
  FenceRegisters(o);
}

// Epilogue of a piece for this warpgroup's 256 columns: a whole piece writes out = O / d (and
// lse, by warpgroup 0); a cut one writes O and (m, d) (natural log units) to its slot.
__device__ __forceinline__ void StoreOutput(const KernelArgs& a, const Piece& piece, int group, int col0,
                            const float (&o)[kOutRegs], const float2 (&state)[2], bool write_state) {
  const MlaDecodeParams& p = a.p;
  const int quad = threadIdx.x % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t head = int64_t{group} * kHeadsPerCta + FragmentRow(r);
    if (head >= p.dims.heads) continue;
    const float m = state[r].x * kLn2;  // base 2 -> natural log units
    const float d = state[r].y;
    const int64_t row = piece.whole ? piece.token * p.dims.heads + head
                                    : int64_t{piece.slot} * p.dims.heads + head;
    const float factor = piece.whole ? 1.0f / d : 1.0f;
    float* dst = (piece.whole ? p.out_latent : a.partial_out) + row * kDLatent + col0 + 2 * quad;
#pragma unroll
    for (int i = 0; i < kOutRegs / 4; ++i) {
      *reinterpret_cast<float2*>(dst + 8 * i) =
          make_float2(o[4 * i + 2 * r] * factor, o[4 * i + 2 * r + 1] * factor);
    }
    if (write_state && quad == 0) {
      if (!piece.whole) {
        a.partial_state[row] = make_float2(m, d);
      } else if (p.lse != nullptr) {
        p.lse[row] = m + logf(d);
      }
    }
  }
}

// Warpgroup 0: scores, softmax, P handoff, left half of O.
__device__ __forceinline__ void ScoreAndLeftValues(const KernelArgs& a, const LaneSpan& span,
                                                   int lane_index, int group, SharedStorage& smem) {
  const int t = threadIdx.x;
  mla_decode::warp::LaneWalk walk(span, lane_index);
  Piece piece;
  int it = 0;
  float o[kOutRegs];
  while (walk.Next(a.p.batch, piece)) {
    LoadQueries(a, piece.token, group, smem);   // the previous piece's last S is complete
    thread::FenceProxyAsync();
    cta::NamedBarrierSync(kBarScoreGroup, kWarpgroupThreads);
    float m[2] = {-INFINITY, -INFINITY}, d[2] = {0.0f, 0.0f};
#pragma unroll
    for (int e = 0; e < kOutRegs; ++e) o[e] = 0.0f;
    for (int tile = piece.tile_begin; tile < piece.tile_end; ++tile, ++it) {
      const int stage = it % kStages;
      Wait<0>();  // O += P V of the previous tile is done (unconditional: a wait in a branch
                  // makes ptxas serialise every wgmma)
      if (it > 0 && t % 32 == 0) thread::MbarrierArrive(&smem.empty[(it - 1) % kStages]);
      __syncwarp();
      thread::MbarrierWait(&smem.full[stage], (it / kStages) & 1);
      float sc[kScoreRegs];
      ComputeScores(smem, stage, sc);                                  // S = Q K^T
      const int valid = min(kKeysPerTile, piece.num_keys - tile * kKeysPerTile);
      float alpha[2];
      OnlineSoftmax(sc, valid, m, d, alpha);                           // P = 2^(S - m')
      if (valid < kKeysPerTile) {                                      // V rows past the context
        ZeroInvalidValueRows(smem, stage, valid);
        thread::FenceProxyAsync();
        cta::NamedBarrierSync(kBarScoreGroup, kWarpgroupThreads);
      }
      RescaleOutput(o, alpha);                                         // O = O 2^(m - m')
      uint32_t pw[kKeysPerTile / kMmaK][4];
      PackWeights(sc, pw);
      StoreWeights(pw, smem, stage);
      const bool last = tile + 1 == piece.tile_end;  // (m, d) of the piece for warpgroup 1
      const float d_row[2] = {last ? cuda::warp::QuadSum(d[0]) : 0.0f,
                              last ? cuda::warp::QuadSum(d[1]) : 0.0f};
      const int slot = it % kHandoffSlots;
      if (t % 4 == 0) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          smem.rescale[slot][FragmentRow(r)] = alpha[r];
          if (last) smem.row_state[slot][FragmentRow(r)] = make_float2(m[r], d_row[r]);
        }
      }
      thread::FenceProxyAsync();
      // Sync, not arrive: warpgroup 1 is normally waiting here already (its product of the
      // previous tile ran under this tile's S), so this costs the barrier's latency; it orders
      // warpgroup 1's reads of this slot (tile it - 2, before its sync of tile it - 1) before
      // the writes above (header, "Synchronisation"; racecheck does not credit it either way).
      cta::NamedBarrierSync(kBarPFull, kConsumerThreads);
      AccumulateValuesFromRegisters(pw, smem, stage, o);               // O += P V[:, :256]
    }
    Wait<0>();
    FenceRegisters(o);
    const float2 state[2] = {make_float2(m[0], cuda::warp::QuadSum(d[0])),
                             make_float2(m[1], cuda::warp::QuadSum(d[1]))};
    StoreOutput(a, piece, group, 0, o, state, /*write_state=*/true);
  }
}

// Warpgroup 1: right half of O, with P and the rescale factors from warpgroup 0; its first
// warp also produces the tiles.
__device__ __forceinline__ void RightValues(const CUtensorMap& cache_map, const KernelArgs& a,
                                            const LaneSpan& span, int lane_index, int group,
                                            SharedStorage& smem) {
  const bool producer = threadIdx.x / 32 == kProducerWarp;
  mla_decode::warp::TileProducer tiles(cache_map, a, span, lane_index, smem);
  if (producer) {  // fill both stages
    tiles.IssueNext();
    tiles.IssueNext();
  }
  mla_decode::warp::LaneWalk walk(span, lane_index);
  Piece piece;
  int it = 0;
  float o[kOutRegs];
  while (walk.Next(a.p.batch, piece)) {
#pragma unroll
    for (int e = 0; e < kOutRegs; ++e) o[e] = 0.0f;
    float2 state[2];
    for (int tile = piece.tile_begin; tile < piece.tile_end; ++tile, ++it) {
      const int stage = it % kStages;
      const int slot = it % kHandoffSlots;
      cta::NamedBarrierSync(kBarPFull, kConsumerThreads);              // P of this tile
      const float alpha[2] = {smem.rescale[slot][FragmentRow(0)],
                              smem.rescale[slot][FragmentRow(1)]};
      RescaleOutput(o, alpha);                                         // O = O 2^(m - m')
      if (tile + 1 == piece.tile_end) {
        state[0] = smem.row_state[slot][FragmentRow(0)];
        state[1] = smem.row_state[slot][FragmentRow(1)];
      }
      thread::MbarrierWait(&smem.full[stage], (it / kStages) & 1);
      AccumulateValuesFromShared(smem, stage, o);                      // O += P V[:, 256:]
      if (threadIdx.x % 32 == 0) thread::MbarrierArrive(&smem.empty[stage]);  // this warp's reads
      __syncwarp();
      if (producer) tiles.IssueNext();  // tile it + 2 into this stage, once warpgroup 0 is done
    }
    StoreOutput(a, piece, group, kValueCols, o, state, /*write_state=*/false);
  }
}

}  // namespace warpgroup

namespace {

__global__ void __launch_bounds__(kThreads, 1)
    MlaDecodeSplitKvKernel(const __grid_constant__ CUtensorMap cache_map,
                           const __grid_constant__ KernelArgs args) {
  extern __shared__ unsigned char smem_raw[];
  // Aligned by an offset from the shared array itself, not through an integer: the compiler
  // then still knows that every access below is to shared memory (ld/st.shared; through an
  // integer they were generic loads and stores, slower and each fenced with MEMBAR.ALL).
  const uint32_t pad = (kSwizzleAtomBytes - SharedAddress(smem_raw) % kSwizzleAtomBytes) %
                       kSwizzleAtomBytes;
  SharedStorage& smem = *reinterpret_cast<SharedStorage*>(smem_raw + pad);
  const int lane_index = blockIdx.x / args.head_groups;
  const int group = blockIdx.x % args.head_groups;
  // Prologue: the lane's bounds from the device plan (one memory latency: every other load of
  // the CTA depends on them) overlap the barrier set-up and the tensor map's fetch.
  const thread::LaneRecord record = thread::LoadLaneRecord(*args.schedule, lane_index);
  if (threadIdx.x == kProducerWarp * 32) thread::PrefetchTensorMap(&cache_map);
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      thread::MbarrierInit(&smem.full[i], 1);   // the producer's arrive (+ the TMA bytes)
      thread::MbarrierInit(&smem.empty[i], kThreads / 32);  // each warp's wgmma reads are done
    }
    thread::FenceBarrierInit();
  }
  if (lane_index >= record.num_lanes) return;  // a fixed launch's CTA past the plan (uniform)
  const LaneSpan span = record.Span(lane_index);
  __syncthreads();
  if (threadIdx.x < kWarpgroupThreads) {
    warpgroup::ScoreAndLeftValues(args, span, lane_index, group, smem);
  } else {
    warpgroup::RightValues(cache_map, args, span, lane_index, group, smem);
  }
}

}  // namespace
}  // namespace mla_decode

absl::Status MlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                const MlaDecodeLaunch& launch, cudaStream_t stream) {
  using namespace mla_decode;  // NOLINT: the kernel's own constants
  if (absl::Status s = CheckMlaDecodeAttention(params, plan, launch); !s.ok()) return s;
  const bool fixed = launch.grid_lanes > 0;
  if (!fixed && (plan.tokens == 0 || plan.schedule.num_lanes == 0)) return absl::OkStatus();

  CUtensorMap cache_map;
  if (absl::Status s = EncodeCacheMap(params.cache, &cache_map); !s.ok()) return s;
  KernelArgs args;
  args.p = params;
  args.schedule = &launch.device_plan->schedule;
  args.head_groups = plan.schedule.head_groups;
  args.scale_log2 = params.softmax_scale * kLog2e;
  if (const int64_t slots = WorkspaceSlots(plan, launch); slots > 0) {
    args.partial_out = static_cast<float*>(launch.workspace);
    args.partial_state =
        reinterpret_cast<float2*>(args.partial_out + slots * params.dims.heads * kDLatent);
  }
  const int64_t lanes = fixed ? launch.grid_lanes : plan.schedule.num_lanes;
  const dim3 grid(static_cast<unsigned>(lanes * plan.schedule.head_groups));
  static PerDeviceSlots smem_opt_in;
  if (absl::Status s = OptInSharedMemory(smem_opt_in, MlaDecodeSplitKvKernel, kSmemBytes);
      !s.ok()) {
    return s;
  }
  MlaDecodeSplitKvKernel<<<grid, kThreads, kSmemBytes, stream>>>(cache_map, args);
  if (absl::Status s = LaunchStatus("MlaDecodeSplitKvKernel"); !s.ok()) return s;
  return MlaDecodeCombine(plan, launch, params.out_latent, params.lse, stream);
}

}  // namespace mla::kernels::cuda
