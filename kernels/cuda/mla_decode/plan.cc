// PlanMlaDecode (see plan.h): host arithmetic only.
//
//   blocks      = ceil(max_context_len / 64)                   cache blocks of the longest context
//   base_ctas   = tokens * ceil(heads / 64)                    CTAs without splitting
//   splits      = clamp(num_sms / base_ctas, 1, blocks)         fill one wave, no empty block
//   per_split   = ceil(blocks / splits) blocks, then splits = ceil(blocks / per_split)
// A step with enough tokens (base_ctas >= num_sms) runs unsplit and needs no combine.
#include "kernels/cuda/mla_decode/plan.h"

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/mla_decode/config.h"

namespace mla::kernels::cuda {

MlaDecodePlan PlanMlaDecode(int64_t tokens, int64_t heads, int64_t max_context_len, int num_sms,
                            int64_t keys_per_split) {
  using mla_decode::kHeadsPerCta;
  using mla_decode::kKeysPerTile;
  MlaDecodePlan plan;
  plan.tokens = tokens;
  plan.heads = heads;
  const int64_t blocks = std::max<int64_t>(1, (max_context_len + kKeysPerTile - 1) / kKeysPerTile);
  int64_t blocks_per_split = 0;
  if (keys_per_split > 0) {
    blocks_per_split = std::max<int64_t>(1, keys_per_split / kKeysPerTile);
  } else {
    const int64_t base_ctas = std::max<int64_t>(1, tokens * ((heads + kHeadsPerCta - 1) / kHeadsPerCta));
    const int64_t splits = std::clamp<int64_t>(num_sms / base_ctas, 1, blocks);
    blocks_per_split = (blocks + splits - 1) / splits;
  }
  plan.num_splits = (blocks + blocks_per_split - 1) / blocks_per_split;
  plan.keys_per_split = blocks_per_split * kKeysPerTile;
  if (plan.num_splits > 1) {
    const int64_t states = plan.num_splits * tokens * heads;
    plan.workspace_bytes = static_cast<int64_t>(sizeof(float)) * (states * mla_decode::kDLatent + 2 * states);
  }
  return plan;
}

}  // namespace mla::kernels::cuda
