// StepPlan: one forward step as the scheduler decides it, and StepResult: what came back.
//
// Plain data at the bottom of the coordinator's dependency chain (step loop -> scheduler ->
// block_manager -> sequence -> step_plan). SequenceStep mirrors worker/step_batch.h's
// mla::SequenceStep field for field, so the step loop converts a plan to the wire (mla.v1.Step)
// and a worker converts that to its StepBatch without any decision of its own. The coordinator
// links no worker code; the two structs are kept equal by review and by the conversion's tests.
//
// Any thread may read or copy these; they hold no references.
#ifndef MLASERVE_COORDINATOR_STEP_PLAN_H_
#define MLASERVE_COORDINATOR_STEP_PLAN_H_

#include <cstdint>
#include <vector>

#include "kernels/mla_params.h"

namespace mla::coordinator {

// Tokens per cache block; shared with the kernels so block tables mean the same everywhere.
inline constexpr int64_t kBlockSize = kernels::kBlockSize;

// Per-request sampling (mirrors kernels::SamplingParams). temperature == 0 means greedy.
struct SamplingParams {
  float temperature = 0.0f;  // >= 0
  int32_t top_k = 0;         // >= 0; 0 = no limit
  float top_p = 1.0f;        // in (0, 1]
  uint64_t seed = 0;         // chosen by the server when the client gave none
};

// One sequence's share of a step. Positions [0, start_pos) are already in the cache; tokens go to
// positions start_pos .. start_pos + tokens.size() - 1.
struct SequenceStep {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;       // new tokens of this step, at least one
  int32_t start_pos = 0;             // tokens already cached before this step
  std::vector<int32_t> block_table;  // exactly ceil((start_pos + tokens.size()) / kBlockSize)
  bool sample = false;               // sample after this step: decodes, and the chunk that
                                     // completes the prompt (or its recomputation)
  SamplingParams sampling;
  uint64_t sample_index = 0;         // tokens this request has generated so far (rng counter)
};

struct StepPlan {
  uint64_t step_id = 0;                // 1, 2, 3, ... over the plans with seqs; 0 if none
  std::vector<SequenceStep> seqs;      // decodes first, then prefill chunks
  // Sequences whose blocks were released since the previous plan (finished, cancelled,
  // preempted). Workers drop their copies of these block tables before applying seqs.
  std::vector<int64_t> freed_seq_ids;

  int64_t num_tokens() const {
    int64_t n = 0;
    for (const SequenceStep& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
  }
};

// The tokens sampled for a plan: one per entry with sample == true, in plan order.
struct StepResult {
  uint64_t step_id = 0;
  std::vector<int64_t> seq_ids;
  std::vector<int32_t> tokens;  // tokens[i] belongs to seq_ids[i]
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_STEP_PLAN_H_
