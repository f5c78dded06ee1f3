// StepBatch: what one forward step computes, as the coordinator plans it and the model runs it.
//
// A step holds any mix of prefill chunks and decode tokens. Sequence s contributes its new
// tokens at positions start_pos .. start_pos + tokens.size() - 1; everything before start_pos is
// already in the latent cache (written by earlier steps). block_table lists the cache blocks of
// positions [0, start_pos + tokens.size()) in order, kBlockSize positions per block. Plain data;
// the model reads it and keeps no reference.
#ifndef MLASERVE_WORKER_STEP_BATCH_H_
#define MLASERVE_WORKER_STEP_BATCH_H_

#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace mla {

struct SequenceStep {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;       // new tokens of this step, at least one
  int32_t start_pos = 0;             // tokens already cached before this step
  std::vector<int32_t> block_table;  // ceil((start_pos + tokens.size()) / kBlockSize) blocks
  bool sample = false;               // produce a token after this step (last prompt chunk, decode)
  kernels::SamplingParams sampling;
  uint64_t sample_index = 0;         // tokens this request has generated so far (the rng counter)
};

struct StepBatch {
  std::vector<SequenceStep> seqs;
  int64_t num_tokens() const;
};

// The result of a step for the sequences with sample == true, in batch order.
struct StepOutput {
  std::vector<int64_t> seq_ids;
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // [seq_ids.size(), vocab] when the caller asked for logits
};

}  // namespace mla

#endif  // MLASERVE_WORKER_STEP_BATCH_H_
