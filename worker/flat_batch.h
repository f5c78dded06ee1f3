// FlatBatch: a StepBatch laid out as the ops want it, built once per step and shared by every
// layer (the per-step "plan"; layers only read it).
//
// Sequences with several new tokens (prefill chunks) come first, then single-token decodes, so
// each attention form sees one contiguous run of query rows: rows [0, prefill_tokens) use the
// materialised form, the rest the absorbed form. `order` maps flat sequence index → batch index.
#ifndef MLASERVE_WORKER_FLAT_BATCH_H_
#define MLASERVE_WORKER_FLAT_BATCH_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/mla_params.h"
#include "worker/model_config.h"
#include "worker/step_batch.h"

namespace mla {

struct FlatBatch {
  int64_t num_tokens = 0;
  int64_t prefill_seqs = 0, prefill_tokens = 0;  // the leading multi-token sequences
  std::vector<int32_t> order;          // [num_seqs] flat index -> index in StepBatch::seqs
                                       // (-1 for a padding sequence)
  std::vector<int32_t> tokens;         // [num_tokens]
  std::vector<int32_t> positions;      // [num_tokens]
  std::vector<int64_t> slots;          // [num_tokens] cache slot of each new token
  std::vector<int32_t> q_start;        // [num_seqs + 1]
  std::vector<int32_t> decode_q_start; // [decode seqs + 1]: q_start of the decodes, from 0
  std::vector<int32_t> context_lens;   // [num_seqs]
  std::vector<int32_t> block_tables;   // [num_seqs, max_blocks], padded with -1
  int64_t max_blocks = 0;
  std::vector<int32_t> sample_rows;    // flat row of the last token of each sampling sequence,
  std::vector<int32_t> sample_seqs;    // and that sequence's StepBatch index, in batch order
                                       // (padding adds rows to sample_rows only: their
                                       // logits are computed and ignored)

  // The ragged batch of the prefill sequences (rows from 0) or of the decodes (rows from
  // prefill_tokens, renumbered from 0).
  kernels::RaggedBatch Prefill() const;
  kernels::RaggedBatch Decode() const;
};

// Validates the batch against the model and a cache of `num_blocks` blocks: at least one token
// per sequence, ids inside the vocabulary, positions inside max_position_embeddings, block tables
// long enough and inside the cache. InvalidArgument naming the sequence otherwise.
absl::StatusOr<FlatBatch> FlattenBatch(const StepBatch& batch, const ModelConfig& config,
                                       int64_t num_blocks);

// The fixed shape a captured decode step is recorded for (worker/model.h): query rows
// and block-table width, each a power of two, so that a few shapes serve every decode batch.
struct GraphShape {
  int64_t tokens = 0;
  int64_t max_blocks = 0;
  bool operator<(const GraphShape& o) const {
    return tokens != o.tokens ? tokens < o.tokens : max_blocks < o.max_blocks;
  }
  bool operator==(const GraphShape& o) const = default;
};

// The smallest graph shape holding `b`, or nullopt when `b` is not decode-only (one new token
// per sequence) or has more than `max_tokens` rows.
std::optional<GraphShape> GraphShapeFor(const FlatBatch& b, int64_t max_tokens);

// Pads a decode-only batch to `shape` (REQUIRES: shape holds b, e.g. GraphShapeFor's): the
// block tables are re-laid out shape.max_blocks wide, and shape.tokens - num_tokens padding
// decodes are appended, each a well-defined row that touches nothing: token 0 at position 0,
// slot -1 (its latent is not written), context 1 over the first block of the batch's first
// sequence (slot 0 of it, which that sequence wrote when it began); sample_rows is filled up to
// shape.tokens rows (sample_seqs is not), so every array's size is the shape's whatever the
// batch. Rows [0, num_tokens) are unchanged.
void PadToGraphShape(FlatBatch& b, const GraphShape& shape);

}  // namespace mla

#endif  // MLASERVE_WORKER_FLAT_BATCH_H_
