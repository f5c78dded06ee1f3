// The lane walk of the decode kernel (plan.h): the pieces (one row's tiles) of a lane, in order,
// as the producer and both warpgroups of splitkv.cu see them, from the lane's bounds that every
// thread of the CTA loads once from the device schedule (LoadLaneRecord). STYLE.md T4: `warp::`
// functions are warp-collective (every lane of the warp calls them together), `thread::` ones
// are per thread.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_LANE_WALK_CUH_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_LANE_WALK_CUH_

#include <cstdint>

#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

// One token's tiles within a lane.
struct Piece {
  int32_t token = 0;
  int32_t tile_begin = 0;
  int32_t tile_end = 0;
  int32_t num_keys = 0;    // keys the row attends to: 0 .. position
  int32_t slot = 0;        // workspace slot when the token is cut
  int64_t seq = 0;
  bool whole = false;      // the piece covers all of the token's tiles
};

// The bounds of a CTA's lane: its tiles from `begin` up to (not including) `end`.
struct LaneSpan {
  MlaDecodeTilePos begin, end;
};

namespace warp {

// The sequence owning query row `token`: the largest s with q_start[s] <= token (empty
// sequences skipped). Warp-collective: 32 lanes test 256 sequences per round of loads.
__device__ __forceinline__ int64_t FindSequence(const RaggedBatch& b, int32_t token) {
  constexpr int kPerLane = 8;
  const int lane = threadIdx.x % 32;
  int64_t count = 0;
  for (int64_t base = 1; base < b.num_seqs; base += 32 * kPerLane) {
    bool le[kPerLane];
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t s = base + k * 32 + lane;
      le[k] = s < b.num_seqs && b.q_start[s] <= token;
    }
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) count += __popc(__ballot_sync(0xffffffffu, le[k]));
  }
  return count;
}

}  // namespace warp

namespace thread {

// 8 bytes of the device plan (read-only while the kernels run: the non-coherent path).
__device__ __forceinline__ MlaDecodeTilePos LoadTilePos(const MlaDecodeTilePos* pos) {
  const int2 v = __ldg(reinterpret_cast<const int2*>(pos));
  return MlaDecodeTilePos{v.x, v.y};
}

// What a CTA reads of the device schedule, once, first thing: the lane count and lane `lane`'s
// boundaries. The four loads are independent (the lane_begin indices are clamped into the
// array, so they need not wait for lanes_are_tokens, under which lane may pass kMaxLanes): one
// memory latency, which the kernel overlaps with its barrier set-up before it calls Span().
struct LaneRecord {
  int32_t num_lanes;
  int32_t lanes_are_tokens;
  MlaDecodeTilePos begin, end;  // lane_begin[lane], lane_begin[lane + 1] (clamped)

  // The lane's bounds (selects, not a branch).
  __device__ __forceinline__ LaneSpan Span(int lane) const {
    const bool whole = lanes_are_tokens != 0;
    return LaneSpan{{whole ? lane : begin.token, whole ? 0 : begin.tile},
                    {whole ? lane + 1 : end.token, whole ? 0 : end.tile}};
  }
};

__device__ __forceinline__ LaneRecord LoadLaneRecord(const MlaDecodeSchedule& s, int lane) {
  return LaneRecord{.num_lanes = __ldg(&s.num_lanes),
                    .lanes_are_tokens = __ldg(&s.lanes_are_tokens),
                    .begin = LoadTilePos(&s.lane_begin[min(lane, kMaxLanes)]),
                    .end = LoadTilePos(&s.lane_begin[min(lane + 1, kMaxLanes)])};
}

}  // namespace thread

namespace warp {

// The pieces of one lane in order (plan.h). Next() is warp-collective.
class LaneWalk {
 public:
  __device__ __forceinline__ LaneWalk(const LaneSpan& span, int lane)
      : lane_(lane), token_(span.begin.token), begin_(span.begin), end_(span.end) {}

  __device__ __forceinline__ bool Next(const RaggedBatch& b, Piece& piece) {
    if (token_ > end_.token || (token_ == end_.token && end_.tile == 0)) return false;
    piece.token = token_;
    piece.seq = FindSequence(b, token_);
    const int32_t q_begin = b.q_start[piece.seq];
    const int32_t q_len = b.q_start[piece.seq + 1] - q_begin;
    piece.num_keys = b.context_lens[piece.seq] - q_len + (token_ - q_begin) + 1;
    const int32_t tiles = (piece.num_keys + kKeysPerTile - 1) / kKeysPerTile;
    piece.tile_begin = token_ == begin_.token ? begin_.tile : 0;
    piece.tile_end = token_ == end_.token ? end_.tile : tiles;
    piece.whole = piece.tile_begin == 0 && piece.tile_end == tiles;
    piece.slot = 2 * lane_ + (token_ == begin_.token ? 0 : 1);
    ++token_;
    return true;
  }

 private:
  int lane_;
  int32_t token_ = 0;
  MlaDecodeTilePos begin_, end_;
};

}  // namespace warp
}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_LANE_WALK_CUH_
