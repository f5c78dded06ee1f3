// PlanMlaDecode (see plan.h): host arithmetic only.
//
// Lanes of the balanced shape begin at global tile positions floor(i * total / lanes), with
// lanes = min(num_sms / head_groups, total tiles, kMaxLanes).
// Cost model, in tiles of one CTA (a tile: ~1.6 us of an SM at the memory floor, H = 128):
//   lanes_are_tokens: the grid's CTAs run in order on num_sms / head_groups CTA slots, so the
//     makespan is that of greedy list scheduling of the tokens' tile counts;
//   balanced: ceil(total / lanes) + kPieceCost per extra token in a lane (the query reload and
//     pipeline restart) + kCutCostPerHead * heads per cut (the combine moves three partial
//     rows of heads x 2 KB per cut, against ~4.8 MB of traffic per tile of the whole GPU)
//     + kCombineCost when anything is cut (one more launch).
// The cheaper one wins; uniform batches that fill the GPU stay uncut, a lone long context is
// spread over every SM, and a ragged batch is balanced.
#include "kernels/cuda/mla_decode/plan.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <span>
#include <vector>

#include "kernels/cuda/mla_decode/config.h"

namespace mla::kernels::cuda {
namespace {

constexpr double kPieceCost = 1.0;
constexpr double kCutCostPerHead = 1.0 / 800.0;
constexpr double kCombineCost = 2.0;

// Makespan of running jobs of the given sizes, in order, each on the first free of `slots`.
int64_t GreedyMakespan(const std::vector<int32_t>& sizes, int64_t slots) {
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> free_at;
  for (int64_t i = 0; i < slots; ++i) free_at.push(0);
  int64_t makespan = 0;
  for (const int32_t size : sizes) {
    const int64_t start = free_at.top();
    free_at.pop();
    free_at.push(start + size);
    makespan = std::max(makespan, start + size);
  }
  return makespan;
}

// Fills plan.cuts from plan.schedule: every token that some lane begins inside of (tile > 0)
// is cut, over the lanes from the one holding its tile 0 to the last one beginning inside it.
void FindCuts(MlaDecodePlan& plan) {
  const MlaDecodeSchedule& s = plan.schedule;
  plan.cuts.num_cuts = 0;
  for (int32_t lane = 1; lane < s.num_lanes; ++lane) {
    const MlaDecodeTilePos begin = s.lane_begin[lane];
    if (begin.tile == 0) continue;
    MlaDecodeCuts& cuts = plan.cuts;
    if (cuts.num_cuts > 0 && cuts.cut[cuts.num_cuts - 1].token == begin.token) {
      cuts.cut[cuts.num_cuts - 1].last_lane = lane;
      continue;
    }
    // The first lane beginning inside this token: the lane before it holds (token, 0), as its
    // first token (slot 2 (lane - 1)) or after others (slot 2 (lane - 1) + 1).
    const bool first_token = s.lane_begin[lane - 1].token == begin.token;
    const int32_t first_slot = 2 * (lane - 1) + (first_token ? 0 : 1);
    cuts.cut[cuts.num_cuts++] = MlaDecodeCut{
        .token = begin.token, .first_lane = lane - 1, .last_lane = lane, .first_slot = first_slot};
  }
}

}  // namespace

MlaDecodeDevicePlan DevicePlanOf(const MlaDecodePlan& plan) {
  return MlaDecodeDevicePlan{.schedule = plan.schedule, .cuts = plan.cuts};
}

int64_t MlaDecodeWorkspaceBytes(int64_t slots, int64_t heads) {
  const int64_t states = slots * heads;
  return static_cast<int64_t>(sizeof(float)) * (states * mla_decode::kDLatent + 2 * states);
}

MlaDecodeLaunchBounds MlaDecodeBoundsFor(int64_t max_tokens, int64_t heads) {
  return MlaDecodeLaunchBounds{.grid_lanes = std::max<int64_t>(kMaxLanes, max_tokens),
                               .workspace_bytes = MlaDecodeWorkspaceBytes(kMaxSlots, heads)};
}

std::vector<int32_t> MlaDecodeTokenTiles(std::span<const int32_t> q_start,
                                         std::span<const int32_t> context_lens) {
  std::vector<int32_t> tiles;
  for (size_t s = 0; s < context_lens.size(); ++s) {
    const int32_t q_len = q_start[s + 1] - q_start[s];
    for (int32_t i = 0; i < q_len; ++i) {
      const int64_t keys = int64_t{context_lens[s]} - q_len + i + 1;  // causal: keys 0..position
      tiles.push_back(static_cast<int32_t>(
          std::max<int64_t>(1, (keys + mla_decode::kKeysPerTile - 1) / mla_decode::kKeysPerTile)));
    }
  }
  return tiles;
}

MlaDecodePlan PlanMlaDecode(std::span<const int32_t> q_start,
                            std::span<const int32_t> context_lens, int64_t heads, int num_sms,
                            const MlaDecodePlanOptions& options) {
  MlaDecodePlan plan;
  plan.heads = heads;
  const std::vector<int32_t> tiles = MlaDecodeTokenTiles(q_start, context_lens);
  const int64_t tokens = static_cast<int64_t>(tiles.size());
  plan.tokens = tokens;
  const int64_t groups = (heads + mla_decode::kHeadsPerCta - 1) / mla_decode::kHeadsPerCta;
  MlaDecodeSchedule& s = plan.schedule;
  s.head_groups = static_cast<int32_t>(groups);
  s.lanes_are_tokens = 1;
  s.num_lanes = static_cast<int32_t>(tokens);
  if (tokens == 0 || options.lanes_are_tokens) return plan;

  int64_t total = 0;
  for (const int32_t t : tiles) total += t;
  const int64_t slots = std::max<int64_t>(1, num_sms / groups);

  // Lane boundaries: `lanes` lanes of about total / lanes tiles, at global tile positions.
  auto boundaries = [&](int64_t lanes) {
    std::vector<MlaDecodeTilePos> begins;
    int64_t token = 0, token_start = 0;  // the token holding the next boundary, its first tile
    for (int64_t lane = 0; lane < lanes; ++lane) {
      const int64_t at = lane * total / lanes;
      while (token_start + tiles[token] <= at) token_start += tiles[token++];
      begins.push_back({static_cast<int32_t>(token), static_cast<int32_t>(at - token_start)});
    }
    return begins;
  };
  std::vector<MlaDecodeTilePos> begins;
  if (options.lane_keys > 0) {
    int64_t per = std::max<int64_t>(1, options.lane_keys / mla_decode::kKeysPerTile);
    while ((total + per - 1) / per > kMaxLanes) per *= 2;
    const std::vector<MlaDecodeTilePos> every = boundaries(total);  // each tile's position
    for (int64_t at = 0; at < total; at += per) begins.push_back(every[at]);  // lanes of `per`
  } else {
    const int64_t lanes = std::min<int64_t>({slots, total, kMaxLanes});
    begins = boundaries(lanes);
    // Compare the makespans (tiles; see the top of this file).
    int64_t cut_positions = 0, max_pieces = 1;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      if (begins[lane].tile > 0) ++cut_positions;
      const MlaDecodeTilePos end = lane + 1 < lanes
                                       ? begins[lane + 1]
                                       : MlaDecodeTilePos{static_cast<int32_t>(tokens), 0};
      const int64_t last_token = end.tile > 0 ? end.token : end.token - 1;
      max_pieces = std::max<int64_t>(max_pieces, last_token - begins[lane].token + 1);
    }
    const double balanced = static_cast<double>((total + lanes - 1) / lanes) +
                            kPieceCost * static_cast<double>(max_pieces - 1) +
                            kCutCostPerHead * static_cast<double>(heads * cut_positions) +
                            (cut_positions > 0 ? kCombineCost : 0.0);
    const double whole = static_cast<double>(GreedyMakespan(tiles, slots));
    if (whole <= balanced) return plan;
  }
  s.lanes_are_tokens = 0;
  s.num_lanes = static_cast<int32_t>(begins.size());
  std::copy(begins.begin(), begins.end(), s.lane_begin);
  s.lane_begin[s.num_lanes] = {static_cast<int32_t>(tokens), 0};
  FindCuts(plan);
  if (plan.cuts.num_cuts > 0) {
    plan.workspace_bytes = MlaDecodeWorkspaceBytes(plan.num_slots(), heads);
  }
  return plan;
}

}  // namespace mla::kernels::cuda
