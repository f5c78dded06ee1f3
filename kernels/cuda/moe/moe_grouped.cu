// MoeGroupedGateUp and MoeGroupedDown (moe_grouped.h): one kernel template, one launch per op for
// every local expert, the expert sizes read on the device.
//
//   gate/up (kMats = 2):  act[r, c] = silu(sum_k x_r[k] gate_e[c, k]) * (sum_k x_r[k] up_e[c, k])
//   down    (kMats = 1):  y[r, c]   = sum_k act_r[k] down_e[c, k]
//
// Input rows f32, rounded to bf16 on load; weights bf16 [out, in] (out = width, in = hidden for
// gate/up; out = hidden, in = width for down); fp32 sums; outputs f32 [max_rows, out].
//
// Decode is memory-bound on the weights (each active expert's matrices are read once), so the
// kernel streams them with 16-byte loads and leaves the arithmetic to the tensor cores
// (mma.sync m16n8k16, bf16 in, fp32 accumulate), where it costs next to nothing: the mma's M is
// 16 output columns (weight rows), its N 8 input rows, its K the reduction.
//
// Grid: (ceil(out / kTileCols) column tiles, min(num_experts, max_rows) expert slots). The CTA in
// slot s serves the s-th local expert that has rows (a warp scan of the offsets) and exits at once
// if there is none, so a step with few tokens starts few CTAs however many experts are local.
// A CTA is kColTiles column tiles of 16 x kSplitK slices of the reduction, one warp each: warp
// (c, s) takes the 32-wide K blocks s, s + kSplitK, ... of column tile c, so the warps of a tile
// read adjacent 64-byte pieces of each weight row. Rows go in passes of kRowsPerPass (kRowTiles
// mma N tiles of 8); a pass reads the tile's weights once and feeds every weight to all its rows.
// After a pass each warp leaves its partial sums in shared memory; the CTA adds the kSplitK
// slices in slice order (deterministic: the same bits every run), applies silu * up (gate/up) and
// stores. Row tiles past the expert's rows are skipped; partial column tiles and the last K block
// read clamped (valid) addresses and zero or discard what falls outside.
//
// K permutation: why one 16-byte load is the mma's operand. In m16n8k16 lane (g = lane / 4,
// t = lane % 4) holds A[g][2t, 2t+1], A[g+8][2t, 2t+1], A[g][2t+8, 2t+9], A[g+8][2t+8, 2t+9] and
// B[2t, 2t+1][g], B[2t+8, 2t+9][g] (PTX ISA, mma.m16n8k16 fragments; low half = lower index). A
// dot product does not depend on the order of its terms, so any relabelling of k that A and B
// share is allowed: here the lane's logical k {2t, 2t+1, 2t+8, 2t+9} of the first mma of a block
// are the physical elements 8t .. 8t+3 of the 32-wide block, and of the second mma 8t+4 .. 8t+7.
// The lane's A registers for both mma are then one 16-byte load of weight row g and one of row
// g + 8 at element 8t, and its B registers the same 8 elements of input row g, packed in pairs.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/bf16.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/cuda/moe/moe_grouped.h"
#include "kernels/cuda/warp_mma.cuh"

namespace mla::kernels::cuda {
namespace {

constexpr int kWarpSize = warp::kSize;
using warp::kFullMask;
constexpr int kMmaM = 16;   // output columns (weight rows) per mma
constexpr int kMmaN = 8;    // input rows per mma
constexpr int kLaneK = 8;   // reduction elements per lane and block: one 16-byte bf16 load
constexpr int kBlockK = 4 * kLaneK;  // reduction elements per warp and block: two mma (K = 16)
constexpr int kColTiles = 2;         // 16-column tiles per CTA
constexpr int kSplitK = 4;           // warps sharing one column tile's reduction
constexpr int kWarps = kColTiles * kSplitK;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kTileCols = kColTiles * kMmaM;  // output columns per CTA
constexpr int kRowTiles = 2;                  // mma N tiles per pass
constexpr int kRowsPerPass = kRowTiles * kMmaN;
constexpr int kFragment = 4;             // fp32 accumulators per lane of an m16n8 tile
constexpr int kMinCtasPerSm = 2;         // occupancy asked of ptxas: at most 128 registers
// K blocks per unrolled step, whose loads are all issued before their mma: the most that fit
// kMinCtasPerSm without spilling (ptxas -v, CUDA 13.0). That is 8 (gate/up) and 6 (down) 16-byte
// weight loads in flight per lane: 64 KB and 48 KB per SM at two CTAs, above the ~30 KB per SM
// that an H200's ~4.3 TB/s (measured copy) at ~0.9 us loaded latency needs over 132 SMs.
template <int kMats>
constexpr int kUnrollBlocks = kMats == 2 ? 2 : 3;
static_assert(kLaneK == kMoeGroupedAlign, "a lane's load is the launchers' alignment unit");
static_assert(kLaneK * sizeof(bf16) == 16, "one 16-byte load per lane and weight row");

// What one launch computes (see the top). Passed by value.
struct GroupedProblem {
  const float* x;               // input rows [*, in] f32
  const int32_t* sorted_pairs;  // row of pair j: sorted_pairs[j] / top_k (null: j - offsets[0])
  int64_t top_k;
  const int32_t* offsets;    // expert_offsets + expert_begin: [num_experts + 1]
  const bf16* const* w[2];   // per local expert, [out, in]: gate and up, or down and unused
  int num_experts;
  int64_t in;                // reduction length, a multiple of kLaneK
  int64_t out;               // output columns
  int64_t max_rows;
  float* y;                  // [max_rows, out] f32
};

// 16 bytes of weights, read once: kept out of L1 (which holds the input rows).
__device__ __forceinline__ uint4 LoadWeights(const bf16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// The local id of the rank-th (from 0) local expert with at least one row, or -1 when fewer have
// rows. Every lane of the warp must call; every lane gets the answer.
__device__ int WarpActiveExpert(const int32_t* offsets, int num_experts, int rank) {
  const int lane = threadIdx.x % kWarpSize;
  const unsigned lower_lanes = (1u << lane) - 1u;
  int found = -1;
  for (int base = 0; base < num_experts; base += kWarpSize) {
    const int e = base + lane;
    const bool has_rows = e < num_experts && __ldg(offsets + e + 1) > __ldg(offsets + e);
    const unsigned with_rows = __ballot_sync(kFullMask, has_rows);
    // The lane holding the rank-th expert with rows, if this chunk has it.
    const unsigned hit =
        __ballot_sync(kFullMask, has_rows && __popc(with_rows & lower_lanes) == rank);
    if (hit != 0) found = base + __ffs(hit) - 1;
    rank -= __popc(with_rows);
  }
  return found;
}

// acc[m][n] += this warp's K slice of W_m[tile rows] . X[tile n rows]^T for one pass.
// wrow[m][h]: this lane's weight rows g + 8h of matrix m; xrow[n]: its input row g of row tile n
// (both clamped to valid rows); tiles n with n * 8 >= rows are skipped.
template <int kMats>
__device__ __forceinline__ void WarpAccumulate(const bf16* const (&wrow)[kMats][2],
                                               const float* const (&xrow)[kRowTiles], int rows,
                                               int64_t in, int slice,
                                               float (&acc)[kMats][kRowTiles][kFragment]) {
  constexpr int kUnroll = kUnrollBlocks<kMats>;
  const int t = threadIdx.x % 4;
  for (int64_t block = slice; block * kBlockK < in; block += kUnroll * kSplitK) {
    uint4 w[kUnroll][kMats][2];
    float4 x[kUnroll][kRowTiles][2];
    // Every load of the step first: the weights stream from memory, the inputs hit L1/L2. A lane
    // past the end of the reduction (last blocks only) loads element 0 and uses zeros instead.
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t k = (block + u * kSplitK) * kBlockK + kLaneK * t;
      const bool valid = k < in;
      const int64_t k_load = valid ? k : 0;
#pragma unroll
      for (int m = 0; m < kMats; ++m) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          w[u][m][h] = LoadWeights(wrow[m][h] + k_load);
          if (!valid) w[u][m][h] = make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int n = 0; n < kRowTiles; ++n) {
        if (n * kMmaN >= rows) continue;
        const float4* src = reinterpret_cast<const float4*>(xrow[n] + k_load);
        x[u][n][0] = valid ? __ldg(src) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        x[u][n][1] = valid ? __ldg(src + 1) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
    }
    // Then the products: per (matrix, row tile), physical elements 0-3 of each lane's piece are
    // the first mma, 4-7 the second.
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int n = 0; n < kRowTiles; ++n) {
        if (n * kMmaN >= rows) continue;
        const float4 lo = x[u][n][0], hi = x[u][n][1];
        const uint32_t b0 = PackBf16x2(lo.x, lo.y), b1 = PackBf16x2(lo.z, lo.w);
        const uint32_t b2 = PackBf16x2(hi.x, hi.y), b3 = PackBf16x2(hi.z, hi.w);
#pragma unroll
        for (int m = 0; m < kMats; ++m) {
          const uint4 row_g = w[u][m][0], row_g8 = w[u][m][1];
          warp::MmaBf16(acc[m][n], {row_g.x, row_g8.x, row_g.y, row_g8.y}, b0, b1);
          warp::MmaBf16(acc[m][n], {row_g.z, row_g8.z, row_g.w, row_g8.w}, b2, b3);
        }
      }
    }
  }
}

template <int kMats>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm)
    MoeGroupedKernel(const GroupedProblem p) {
  // partial[warp][m][n][i][lane]: accumulator i of the lane's fragment, summed over the warp's
  // K slice, for matrix m and row tile n.
  __shared__ float partial[kWarps][kMats][kRowTiles][kFragment][kWarpSize];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int expert = WarpActiveExpert(p.offsets, p.num_experts, static_cast<int>(blockIdx.y));
  if (expert < 0) return;  // fewer local experts with rows than slots
  const int64_t range_begin = __ldg(p.offsets);
  const int64_t pairs_begin = __ldg(p.offsets + expert);  // the expert's first pair j
  const int64_t first_row = pairs_begin - range_begin;    // and its first output row
  if (first_row >= p.max_rows) return;                    // a count above max_rows: cut
  const int64_t count = __ldg(p.offsets + expert + 1) - pairs_begin;
  const int64_t room = p.max_rows - first_row;
  const int rows = static_cast<int>(count < room ? count : room);

  const int g = lane / 4;
  const int col_tile = warp / kSplitK, slice = warp % kSplitK;
  const int64_t tile_col0 = static_cast<int64_t>(blockIdx.x) * kTileCols;
  const int64_t col0 = tile_col0 + col_tile * kMmaM;  // this warp's 16 columns
  // The lane's weight rows g and g + 8 (clamped: columns >= out are never stored).
  const bf16* wrow[kMats][2];
#pragma unroll
  for (int m = 0; m < kMats; ++m) {
    const bf16* w = p.w[m][expert];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t col = col0 + g + 8 * h;
      wrow[m][h] = w + (col < p.out ? col : p.out - 1) * p.in;
    }
  }

  for (int row0 = 0; row0 < rows; row0 += kRowsPerPass) {
    const int pass_rows = rows - row0 < kRowsPerPass ? rows - row0 : kRowsPerPass;
    // The lane's input row g of each row tile (clamped: rows past the pass are never stored).
    const float* xrow[kRowTiles];
#pragma unroll
    for (int n = 0; n < kRowTiles; ++n) {
      const int r = row0 + n * kMmaN + g;
      const int64_t j = pairs_begin + (r < rows ? r : rows - 1);
      const int64_t src =
          p.sorted_pairs != nullptr ? __ldg(p.sorted_pairs + j) / p.top_k : j - range_begin;
      xrow[n] = p.x + src * p.in;
    }
    float acc[kMats][kRowTiles][kFragment] = {};
    if (col0 < p.out) WarpAccumulate<kMats>(wrow, xrow, pass_rows, p.in, slice, acc);
#pragma unroll
    for (int m = 0; m < kMats; ++m) {
#pragma unroll
      for (int n = 0; n < kRowTiles; ++n) {
#pragma unroll
        for (int i = 0; i < kFragment; ++i) partial[warp][m][n][i][lane] = acc[m][n][i];
      }
    }
    __syncthreads();

    // Element i of lane l's fragment is (column l / 4 + 8 (i / 2), row 2 (l % 4) + i % 2) of its
    // tile: each thread finishes some (column tile, row tile, i, l), adding slices in order.
    constexpr int kPassElements = kColTiles * kRowTiles * kFragment * kWarpSize;
    for (int idx = threadIdx.x; idx < kPassElements; idx += kThreads) {
      const int l = idx % kWarpSize;
      const int i = idx / kWarpSize % kFragment;
      const int n = idx / (kWarpSize * kFragment) % kRowTiles;
      const int c = idx / (kWarpSize * kFragment * kRowTiles);
      const int64_t col = tile_col0 + c * kMmaM + l / 4 + 8 * (i / 2);
      const int row = row0 + n * kMmaN + 2 * (l % 4) + i % 2;
      if (col >= p.out || row >= rows) continue;
      float sum[kMats];
#pragma unroll
      for (int m = 0; m < kMats; ++m) {
        sum[m] = partial[c * kSplitK][m][n][i][l];
#pragma unroll
        for (int s = 1; s < kSplitK; ++s) sum[m] += partial[c * kSplitK + s][m][n][i][l];
      }
      float* dst = p.y + (first_row + row) * p.out + col;
      if constexpr (kMats == 2) {
        *dst = sum[0] / (1.0f + expf(-sum[0])) * sum[1];  // silu(gate) * up, SiluMul's formula
      } else {
        *dst = sum[0];
      }
    }
    __syncthreads();  // the next pass rewrites `partial`
  }
}

absl::Status NotNull(const char* op, const char* field, const void* p) {
  if (p != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", field, " must not be null"));
}

// Non-null and 16-byte aligned (float4 loads).
absl::Status Aligned(const char* op, const char* field, const void* p) {
  if (absl::Status s = NotNull(op, field, p); !s.ok()) return s;
  if (reinterpret_cast<uintptr_t>(p) % 16 == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", field, " must be 16-byte aligned"));
}

// The sizes and pointers both launchers take.
absl::Status CheckCommon(const char* op, const int32_t* expert_offsets, int64_t max_rows,
                         const MoeGroupedWeights& w) {
  if (w.num_experts < 1 || w.num_experts > kMoeMaxExperts) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": w.num_experts must be in [1, ",
                                                   kMoeMaxExperts, "], got ", w.num_experts));
  }
  if (w.expert_begin < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": w.expert_begin must be >= 0, got ", w.expert_begin));
  }
  if (w.hidden <= 0 || w.hidden % kMoeGroupedAlign != 0) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": w.hidden must be a positive multiple of ",
                                                   kMoeGroupedAlign, ", got ", w.hidden));
  }
  if (w.width <= 0 || w.width % kMoeGroupedAlign != 0) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": w.width must be a positive multiple of ",
                                                   kMoeGroupedAlign, ", got ", w.width));
  }
  if (max_rows < 0 || max_rows > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": max_rows must be in [0, ", INT32_MAX, "], got ", max_rows));
  }
  return NotNull(op, "expert_offsets", expert_offsets);
}

template <int kMats>
absl::Status Launch(const GroupedProblem& p, const char* kernel, cudaStream_t stream) {
  const int64_t col_tiles = (p.out + kTileCols - 1) / kTileCols;
  const int64_t slots = p.num_experts < p.max_rows ? p.num_experts : p.max_rows;
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(slots));
  MoeGroupedKernel<kMats><<<grid, kThreads, 0, stream>>>(p);
  return LaunchStatus(kernel);
}

}  // namespace

absl::Status MoeGroupedGateUp(const float* x, const int32_t* expert_offsets,
                              const int32_t* sorted_pairs, int64_t top_k, int64_t max_rows,
                              const MoeGroupedWeights& w, float* act, cudaStream_t stream) {
  constexpr const char* kOp = "MoeGroupedGateUp";
  if (absl::Status s = CheckCommon(kOp, expert_offsets, max_rows, w); !s.ok()) return s;
  if (top_k < 1) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": top_k must be >= 1, got ", top_k));
  }
  for (absl::Status s :
       {Aligned(kOp, "x", x), NotNull(kOp, "sorted_pairs", sorted_pairs),
        NotNull(kOp, "w.gate", w.gate), NotNull(kOp, "w.up", w.up), Aligned(kOp, "act", act)}) {
    if (!s.ok()) return s;
  }
  if (max_rows == 0) return absl::OkStatus();
  GroupedProblem p{.x = x,
                   .sorted_pairs = sorted_pairs,
                   .top_k = top_k,
                   .offsets = expert_offsets + w.expert_begin,
                   .w = {w.gate, w.up},
                   .num_experts = static_cast<int>(w.num_experts),
                   .in = w.hidden,
                   .out = w.width,
                   .max_rows = max_rows,
                   .y = act};
  return Launch<2>(p, "MoeGroupedKernel<gate/up>", stream);
}

absl::Status MoeGroupedDown(const float* act, const int32_t* expert_offsets, int64_t max_rows,
                            const MoeGroupedWeights& w, float* y, cudaStream_t stream) {
  constexpr const char* kOp = "MoeGroupedDown";
  if (absl::Status s = CheckCommon(kOp, expert_offsets, max_rows, w); !s.ok()) return s;
  for (absl::Status s :
       {Aligned(kOp, "act", act), NotNull(kOp, "w.down", w.down), Aligned(kOp, "y", y)}) {
    if (!s.ok()) return s;
  }
  if (max_rows == 0) return absl::OkStatus();
  GroupedProblem p{.x = act,
                   .sorted_pairs = nullptr,
                   .top_k = 1,
                   .offsets = expert_offsets + w.expert_begin,
                   .w = {w.down, nullptr},
                   .num_experts = static_cast<int>(w.num_experts),
                   .in = w.width,
                   .out = w.hidden,
                   .max_rows = max_rows,
                   .y = y};
  return Launch<1>(p, "MoeGroupedKernel<down>", stream);
}

}  // namespace mla::kernels::cuda
