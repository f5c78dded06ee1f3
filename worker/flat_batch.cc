#include "worker/flat_batch.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mla {
namespace {

using kernels::kBlockSize;

absl::Status CheckSequence(const SequenceStep& s, const ModelConfig& c, int64_t num_blocks) {
  auto bad = [&](auto... parts) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": ", parts...));
  };
  if (s.tokens.empty()) return bad("no tokens to process");
  if (s.start_pos < 0) return bad("start_pos ", s.start_pos, " is negative");
  const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
  if (end > c.max_position_embeddings) {
    return bad("positions up to ", end, " exceed max_position_embeddings ",
               c.max_position_embeddings);
  }
  for (int32_t t : s.tokens) {
    if (t < 0 || t >= c.vocab_size) return bad("token id ", t, " is outside [0, ", c.vocab_size, ")");
  }
  const int64_t need = (end + kBlockSize - 1) / kBlockSize;
  if (static_cast<int64_t>(s.block_table.size()) < need) {
    return bad("block table has ", s.block_table.size(), " blocks, ", need, " needed for ", end,
               " tokens");
  }
  for (int64_t i = 0; i < need; ++i) {
    if (s.block_table[i] < 0 || s.block_table[i] >= num_blocks) {
      return bad("block id ", s.block_table[i], " is outside the cache's ", num_blocks, " blocks");
    }
  }
  return absl::OkStatus();
}

}  // namespace

kernels::RaggedBatch FlatBatch::Prefill() const {
  return kernels::RaggedBatch{.num_seqs = prefill_seqs,
                              .q_start = q_start.data(),
                              .context_lens = context_lens.data(),
                              .block_tables = block_tables.data(),
                              .max_blocks_per_seq = max_blocks};
}

kernels::RaggedBatch FlatBatch::Decode() const {
  return kernels::RaggedBatch{
      .num_seqs = static_cast<int64_t>(order.size()) - prefill_seqs,
      .q_start = decode_q_start.data(),
      .context_lens = context_lens.data() + prefill_seqs,
      .block_tables = block_tables.data() + prefill_seqs * max_blocks,
      .max_blocks_per_seq = max_blocks};
}

absl::StatusOr<FlatBatch> FlattenBatch(const StepBatch& batch, const ModelConfig& config,
                                       int64_t num_blocks) {
  FlatBatch f;
  const int64_t n = static_cast<int64_t>(batch.seqs.size());
  for (const SequenceStep& s : batch.seqs) {
    if (absl::Status st = CheckSequence(s, config, num_blocks); !st.ok()) return st;
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    f.max_blocks = std::max(f.max_blocks, (end + kBlockSize - 1) / kBlockSize);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (batch.seqs[i].tokens.size() > 1) f.order.push_back(i);
  }
  f.prefill_seqs = static_cast<int64_t>(f.order.size());
  for (int32_t i = 0; i < n; ++i) {
    if (batch.seqs[i].tokens.size() == 1) f.order.push_back(i);
  }
  f.q_start.push_back(0);
  f.block_tables.assign(n * f.max_blocks, -1);
  std::vector<int32_t> last_row(n);
  for (int64_t k = 0; k < n; ++k) {
    const SequenceStep& s = batch.seqs[f.order[k]];
    const int32_t q_len = static_cast<int32_t>(s.tokens.size());
    const int32_t end = s.start_pos + q_len;
    for (int32_t i = 0; i < q_len; ++i) {
      const int32_t pos = s.start_pos + i;
      f.tokens.push_back(s.tokens[i]);
      f.positions.push_back(pos);
      f.slots.push_back(static_cast<int64_t>(s.block_table[pos / kBlockSize]) * kBlockSize +
                        pos % kBlockSize);
    }
    f.q_start.push_back(f.q_start.back() + q_len);
    f.context_lens.push_back(end);
    const int64_t used = (end + kBlockSize - 1) / kBlockSize;
    std::copy_n(s.block_table.begin(), used, f.block_tables.begin() + k * f.max_blocks);
    last_row[f.order[k]] = f.q_start.back() - 1;
    if (k + 1 == f.prefill_seqs) f.prefill_tokens = f.q_start.back();
  }
  f.num_tokens = f.q_start.back();
  for (int64_t k = f.prefill_seqs; k <= n; ++k) {
    f.decode_q_start.push_back(f.q_start[k] - static_cast<int32_t>(f.prefill_tokens));
  }
  for (int32_t i = 0; i < n; ++i) {
    if (batch.seqs[i].sample) {
      f.sample_rows.push_back(last_row[i]);
      f.sample_seqs.push_back(i);
    }
  }
  return f;
}

std::optional<GraphShape> GraphShapeFor(const FlatBatch& b, int64_t max_tokens) {
  if (b.prefill_seqs > 0 || b.num_tokens == 0 || b.num_tokens > max_tokens) return std::nullopt;
  GraphShape shape{.tokens = 1, .max_blocks = 1};
  while (shape.tokens < b.num_tokens) shape.tokens *= 2;
  while (shape.max_blocks < b.max_blocks) shape.max_blocks *= 2;
  return shape;
}

void PadToGraphShape(FlatBatch& b, const GraphShape& shape) {
  const int64_t seqs = static_cast<int64_t>(b.order.size());
  std::vector<int32_t> tables(shape.tokens * shape.max_blocks, -1);
  for (int64_t k = 0; k < seqs; ++k) {
    std::copy_n(b.block_tables.begin() + k * b.max_blocks, b.max_blocks,
                tables.begin() + k * shape.max_blocks);
  }
  const int32_t first_block = b.block_tables[0];
  for (int64_t k = seqs; k < shape.tokens; ++k) {
    const int32_t row = static_cast<int32_t>(k);
    b.order.push_back(-1);
    b.tokens.push_back(0);
    b.positions.push_back(0);
    b.slots.push_back(-1);
    b.q_start.push_back(row + 1);
    b.decode_q_start.push_back(row + 1);
    b.context_lens.push_back(1);
    tables[k * shape.max_blocks] = first_block;
  }
  // Every row may be gathered for sampling; the rows past sample_seqs are ignored.
  while (static_cast<int64_t>(b.sample_rows.size()) < shape.tokens) {
    b.sample_rows.push_back(static_cast<int32_t>(shape.tokens - 1));
  }
  b.block_tables = std::move(tables);
  b.max_blocks = shape.max_blocks;
  b.num_tokens = shape.tokens;
}

}  // namespace mla
