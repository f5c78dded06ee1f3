// The lane walk of the decode kernel (plan.h): the pieces (one row's tiles) of a lane, in order,
// as the producer and both warpgroups of splitkv.cu see them. STYLE.md T4: `warp::` functions
// are warp-collective (every lane of the warp calls them together).
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

// The pieces of one lane in order (plan.h). Next() is warp-collective.
class LaneWalk {
 public:
  __device__ __forceinline__ LaneWalk(const MlaDecodeSchedule& s, int lane) : lane_(lane) {
    if (s.lanes_are_tokens) {
      begin_ = {lane, 0};
      end_ = {lane + 1, 0};
    } else {
      begin_ = s.lane_begin[lane];
      end_ = s.lane_begin[lane + 1];
    }
    token_ = begin_.token;
  }

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
