// Planning an absorbed MLA decode step (flashinfer's plan/run split, STYLE.md I1): once per step,
// on the host, from the step's query rows and context lengths (which the host already knows).
// The plan fixes the work of every CTA and the workspace, so every layer's MlaDecodeAttention
// run reuses it, with no host sync. The kernels read the plan's schedule and cuts from DEVICE
// memory (MlaDecodeDevicePlan, which the caller uploads once per step, in stream order before
// the step's first run), so a CUDA graph captured with a fixed launch (MlaDecodeBoundsFor,
// mla_decode.h) is replayed for another step after that step's plan is uploaded to the same
// buffer.
//
// Work is measured in key tiles (one cache block of 64 keys) per query row ("token"), and the
// same for each of the ceil(heads / 64) head groups. The plan cuts the concatenation of all
// tokens' tiles into lanes; each lane runs on head_groups CTAs, one per head group, which walk
// its tokens in order. Two shapes:
//   lanes_are_tokens: lane i = token i, whole. No cut, no workspace, no combine. Chosen when
//     the tokens' lengths already fill the GPU evenly (uniform batches, many tokens); num_lanes
//     = tokens may exceed kMaxLanes (lane_begin is unused).
//   balanced: num_lanes <= kMaxLanes lanes of about total / num_lanes tiles each, cut at any
//     tile, so one long context spreads over the GPU and a ragged batch is balanced.
//     lane_begin[i] = (token, tile) of lane i's first tile; lane_begin[num_lanes] = (tokens, 0).
// A token whose tiles span several lanes is "cut": each piece writes an unnormalised partial
// output and its softmax state (m, d) to a workspace slot, and MlaDecodeCombine merges them
// (SoftmaxState::Merge). The piece of token t in lane i uses slot 2i if t is lane i's first
// token, else slot 2i + 1 (a lane holds at most two cut pieces: its first and its last token).
// The choice between the two shapes compares estimated makespans in tiles (plan.cc).
//
// Workspace layout (float32) for a capacity of `slots` slots (plan.num_slots() for a plain
// launch, kMaxSlots for a fixed one; MlaDecodeWorkspaceBytes):
//   partial_out   [slots, heads, 512]   sum_j exp(s_j - m) c_j over the piece
//   partial_state [slots, heads, 2]     (m, d) of the piece
// Plain functions of their arguments; any thread may call them.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "kernels/cuda/mla_decode/config.h"

namespace mla::kernels::cuda {

inline constexpr int kMaxLanes = 160;             // >= the SM count of an H100 / H200 (132)
inline constexpr int kMaxSlots = 2 * kMaxLanes;   // workspace slots of any balanced plan

// A position in the step's work: key tile `tile` of query row `token` (8-byte aligned: the
// kernel loads one in a single access).
struct alignas(8) MlaDecodeTilePos {
  int32_t token = 0;
  int32_t tile = 0;
};

// Which lanes the split kernel's CTAs run.
struct MlaDecodeSchedule {
  int32_t num_lanes = 0;
  int32_t head_groups = 1;        // CTAs per lane: ceil(heads / 64) (fixed by heads)
  int32_t lanes_are_tokens = 1;   // 1: lane i = token i (lane_begin unused)
  MlaDecodeTilePos lane_begin[kMaxLanes + 1];
};

// A token cut over lanes first_lane .. last_lane (the combine's work list). Its piece in
// first_lane is in slot first_slot (2 first_lane, or 2 first_lane + 1 when the token is not
// that lane's first); lanes after first_lane begin inside the token, so theirs is 2 lane.
struct alignas(16) MlaDecodeCut {
  int32_t token = 0;
  int32_t first_lane = 0;
  int32_t last_lane = 0;
  int32_t first_slot = 0;
};
struct MlaDecodeCuts {
  int32_t num_cuts = 0;           // <= num_lanes - 1 (< kMaxLanes) and <= tokens
  MlaDecodeCut cut[kMaxLanes];
};

// The part of a plan the kernels read, as one trivially copyable block that the caller copies
// to device memory (16-byte aligned) for each step, before the step's first run.
struct alignas(16) MlaDecodeDevicePlan {
  MlaDecodeSchedule schedule;
  MlaDecodeCuts cuts;
};
static_assert(std::is_trivially_copyable_v<MlaDecodeDevicePlan>, "copied to the device as bytes");

struct MlaDecodePlan {
  int64_t tokens = 0;           // query rows of the step (q_start[num_seqs])
  int64_t heads = 0;            // query heads on this rank
  MlaDecodeSchedule schedule;
  MlaDecodeCuts cuts;
  int64_t workspace_bytes = 0;  // for a plain launch; 0 when no token is cut

  int64_t num_slots() const { return cuts.num_cuts > 0 ? 2 * int64_t{schedule.num_lanes} : 0; }
};

// The plan's schedule and cuts, to be copied to the device.
MlaDecodeDevicePlan DevicePlanOf(const MlaDecodePlan& plan);

// Bytes of a workspace of `slots` slots for `heads` heads (layout above).
int64_t MlaDecodeWorkspaceBytes(int64_t slots, int64_t heads);

// What a fixed launch (mla_decode.h) needs to serve every plan of at most `max_tokens` query
// rows and `heads` heads: a grid of grid_lanes = max(kMaxLanes, max_tokens) lanes and a
// workspace of MlaDecodeWorkspaceBytes(kMaxSlots, heads) bytes.
// REQUIRES: max_tokens >= 0, heads > 0.
struct MlaDecodeLaunchBounds {
  int64_t grid_lanes = 0;
  int64_t workspace_bytes = 0;
};
MlaDecodeLaunchBounds MlaDecodeBoundsFor(int64_t max_tokens, int64_t heads);

// Test and benchmark overrides of the automatic choice.
struct MlaDecodePlanOptions {
  bool lanes_are_tokens = false;  // one lane per query row, whatever the cost model says
  int64_t lane_keys = 0;          // > 0: lanes of this many keys (rounded down to whole tiles,
                                  // doubled until at most kMaxLanes) over the concatenation of
                                  // all rows' tiles, cut anywhere; 0: automatic
};

// Plans a step whose sequence s owns query rows [q_start[s], q_start[s + 1]) and has
// context_lens[s] cached keys (rows attend causally, as in MlaDecodeParams). num_sms: the
// device's SM count (one CTA per SM fits).
// REQUIRES: q_start.size() == context_lens.size() + 1, q_start[0] == 0, q_start non-decreasing,
// context_lens[s] >= q_len(s), heads > 0, num_sms > 0.
MlaDecodePlan PlanMlaDecode(std::span<const int32_t> q_start,
                            std::span<const int32_t> context_lens, int64_t heads, int num_sms,
                            const MlaDecodePlanOptions& options = {});

// The number of key tiles of each query row (the unit the plan balances).
std::vector<int32_t> MlaDecodeTokenTiles(std::span<const int32_t> q_start,
                                         std::span<const int32_t> context_lens);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_
