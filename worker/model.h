// Model: the DeepSeek-V3 forward pass over a paged latent cache, for one shard (a layer range
// and a tensor-parallel rank) or the whole model.
//
// The model runs on a Backend (backend.h: the CPU, or one GPU); its weights and cache live in
// that backend's memory. Load reads only this shard's tensors from the checkpoint (bf16
// weights, float norms) into it. Forward
// runs a StepBatch: embed (first stage), the shard's layers, and on the last stage the final
// norm, lm_head and sampling for sequences that ask for a token. Attention uses the materialised
// form for sequences with more than one new token (prefill chunks) and the absorbed form for
// single-token decodes; both write the latent cache before reading it, so a prompt gives the same
// result in one prefill or in chunks.
//
// Parallelism (MODEL.md §7): the partial outputs of the embedding, o_proj and each FFN are summed
// over comms.tp; a stage other than the first receives the hidden states from comms.pp_prev and a
// stage other than the last sends them to comms.pp_next and returns no tokens; the last stage
// gathers the vocab-parallel logits and every tp rank samples the same tokens. Every rank of the
// group must run the same steps in the same order. Not thread-safe: one caller at a time.
//
// Step graphs (ForwardOptions::step_graphs, a backend that records steps): a decode-only step is
// padded to its GraphShape (flat_batch.h); the first step of a shape runs op by op (the
// backend's scratch grows to the step's size), the second is recorded and replayed, and later
// ones only replay — one launch instead of hundreds (a shape whose recording failed twice stays
// op by op). In a tp / pp group the recording holds the step's collectives; ranks may record or
// replay at different steps (a recording runs nothing, so the collectives still meet in order),
// and a worker of a group pads its decode steps even without step_graphs, so that all ranks'
// collectives agree in size. Padding rows write nothing and are not sampled, so the tokens are
// those of the unpadded step, and a replay computes exactly what the same padded step run op by
// op computes.
#ifndef MLASERVE_WORKER_MODEL_H_
#define MLASERVE_WORKER_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend.h"
#include "worker/checkpoint.h"
#include "worker/communicator.h"
#include "worker/latent_cache_pool.h"
#include "worker/model_config.h"
#include "worker/routing_trace.h"
#include "worker/step_batch.h"

namespace mla {

// Which part of the model a worker holds.
struct ShardSpec {
  int64_t layer_begin = 0;   // first layer of this pipeline stage
  int64_t layer_end = -1;    // one past the last; -1 = num_hidden_layers
  int64_t tp_rank = 0;
  int64_t tp_size = 1;
};

struct ForwardOptions {
  bool return_logits = false;  // fill StepOutput::logits
  // Record decode steps of up to kMaxGraphTokens rows once per GraphShape and replay them
  // (CUDA graphs) where the backend can; false: always run the ops one by one (like vLLM's
  // --enforce-eager).
  bool step_graphs = true;
  // Records the MoE gates' choices into, or replays them from, this trace (routing_trace.h);
  // the step then runs op by op. One worker only (tp = pp = 1): INVALID_ARGUMENT otherwise.
  RoutingTrace* routing = nullptr;
};

// The largest decode batch recorded as a step graph (shapes of 1, 2, 4, ... rows up to it).
inline constexpr int64_t kMaxGraphTokens = 64;

class Model {
 public:
  // InvalidArgument when the communicators do not match the shard (a tp group of tp_size with
  // this tp_rank; pp_prev unless the first stage, pp_next unless the last). The communicators must
  // outlive the model and work on the backend's memory (Gloo: CPU, NCCL: the GPU). A null
  // backend is the CPU's.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const Checkpoint& checkpoint,
                                                     const ShardSpec& shard,
                                                     const ModelComms& comms = {},
                                                     std::shared_ptr<Backend> backend = nullptr);
  ~Model();

  const ModelConfig& config() const;
  const ShardSpec& shard() const;
  int64_t num_local_layers() const;
  Backend& backend();

  // Decode-step shapes recorded as step graphs so far (not counting ones the backend dropped).
  int64_t num_step_graphs() const;

  // A latent cache of num_blocks blocks for this shard's layers, in the backend's memory.
  absl::StatusOr<std::unique_ptr<LatentCachePool>> NewCache(int64_t num_blocks);

  // Runs one step. REQUIRES: cache comes from NewCache. InvalidArgument for a cache without
  // num_local_layers() layers or a malformed batch (token ids out of the vocabulary, block
  // tables too short or past the cache, empty sequences); a collective's error (Unavailable,
  // DeadlineExceeded) after which the group must be rebuilt.
  absl::StatusOr<StepOutput> Forward(const StepBatch& batch, LatentCachePool& cache,
                                     const ForwardOptions& options = {});

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_MODEL_H_
