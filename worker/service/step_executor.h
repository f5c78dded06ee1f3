// StepExecutor: runs the coordinator's Steps on one worker's model shard and cache.
//
// It converts each wire Step (mla.v1.Step) into the model's StepBatch and the model's output
// into a StepResult. Block tables arrive as deltas: the executor keeps every live sequence's
// table between steps, extends it from block_table_offset on, and forgets the sequences a Step
// lists in freed_seq_ids (before applying that step's seqs, so a freed block may be reused at
// once). A step that fails answers with StepResult.error; the worker's state is then unknown and
// the coordinator stops using it.
//
// Each time the model keeps a new step graph (Model::num_step_graphs grows), one line goes to
// stderr: "mla-worker: step graphs recorded: N".
//
// Not thread-safe: the worker's main thread runs steps one at a time, in step_id order. The
// model and cache must outlive the executor.
#ifndef MLASERVE_WORKER_SERVICE_STEP_EXECUTOR_H_
#define MLASERVE_WORKER_SERVICE_STEP_EXECUTOR_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "mla/v1/worker.pb.h"
#include "worker/latent_cache_pool.h"
#include "worker/model.h"
#include "worker/step_batch.h"

namespace mla::worker_service {

class StepExecutor {
 public:
  // returns_tokens: this rank reports the sampled tokens (the last stage's tp-rank 0); other
  // ranks answer with the step id alone. step_graphs: ForwardOptions::step_graphs.
  StepExecutor(Model* model, LatentCachePool* cache, bool returns_tokens, bool step_graphs);

  StepExecutor(const StepExecutor&) = delete;
  StepExecutor& operator=(const StepExecutor&) = delete;

  // Runs one step; never fails outright (errors go into the result).
  v1::StepResult Run(const v1::Step& step);

  // The batch a step describes, with full block tables; updates the kept tables. InvalidArgument
  // when an offset points past what is kept for that sequence.
  absl::StatusOr<StepBatch> ToBatch(const v1::Step& step);

  int64_t num_tracked_sequences() const { return static_cast<int64_t>(tables_.size()); }
  // The kept block table of a sequence (empty if none). For tests.
  std::vector<int32_t> table(int64_t seq_id) const;

 private:
  Model* const model_;
  LatentCachePool* const cache_;
  const bool returns_tokens_;
  const bool step_graphs_;
  int64_t graphs_reported_ = 0;  // num_step_graphs() at the last report
  absl::flat_hash_map<int64_t, std::vector<int32_t>> tables_;  // by seq_id
};

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_STEP_EXECUTOR_H_
