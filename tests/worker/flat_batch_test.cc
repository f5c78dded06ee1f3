// GraphShapeFor and PadToGraphShape (worker/flat_batch.h): which batches a captured decode step
// can serve, and the padded arrays: real rows unchanged, padding rows well defined (token 0,
// position 0, slot -1, context 1 over the first sequence's first block), every array of the
// shape's size whatever the batch.
#include "worker/flat_batch.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"

namespace mla {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.vocab_size = 1000;
  c.max_position_embeddings = 4096;
  return c;
}

SequenceStep Decode(int64_t id, int32_t pos, std::vector<int32_t> blocks, bool sample = true) {
  return SequenceStep{.seq_id = id,
                      .tokens = {static_cast<int32_t>(10 + id)},
                      .start_pos = pos,
                      .block_table = std::move(blocks),
                      .sample = sample};
}

TEST(GraphShapeFor, PowersOfTwoForDecodeOnlyBatches) {
  StepBatch batch{.seqs = {Decode(1, 70, {4, 9}), Decode(2, 3, {7}), Decode(3, 200, {1, 2, 3, 5})}};
  auto flat = FlattenBatch(batch, Config(), 16);
  ASSERT_TRUE(flat.ok()) << flat.status();
  const auto shape = GraphShapeFor(*flat, 64);
  ASSERT_TRUE(shape.has_value());
  EXPECT_EQ(shape->tokens, 4);
  EXPECT_EQ(shape->max_blocks, 4);
  EXPECT_FALSE(GraphShapeFor(*flat, 2).has_value()) << "more rows than the largest graph";

  StepBatch with_prefill{.seqs = {Decode(1, 70, {4, 9}), SequenceStep{.seq_id = 5,
                                                                      .tokens = {1, 2, 3},
                                                                      .start_pos = 0,
                                                                      .block_table = {6}}}};
  auto mixed = FlattenBatch(with_prefill, Config(), 16);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_FALSE(GraphShapeFor(*mixed, 64).has_value()) << "a prefill chunk is never captured";
}

TEST(PadToGraphShape, RealRowsKeptPaddingRowsWellDefined) {
  // The second sequence does not sample: sample_rows still ends up shape.tokens long.
  StepBatch batch{.seqs = {Decode(1, 70, {4, 9}), Decode(2, 3, {7}, false), Decode(3, 5, {2})}};
  auto flat = FlattenBatch(batch, Config(), 16);
  ASSERT_TRUE(flat.ok()) << flat.status();
  const FlatBatch before = *flat;
  const GraphShape shape{.tokens = 8, .max_blocks = 4};
  PadToGraphShape(*flat, shape);
  const FlatBatch& b = *flat;

  EXPECT_EQ(b.num_tokens, 8);
  EXPECT_EQ(std::count(b.order.begin(), b.order.end(), -1), 5) << "padding sequences";
  EXPECT_EQ(b.prefill_seqs, 0);
  EXPECT_EQ(b.max_blocks, 4);
  ASSERT_EQ(b.order.size(), 8u);
  ASSERT_EQ(b.tokens.size(), 8u);
  ASSERT_EQ(b.positions.size(), 8u);
  ASSERT_EQ(b.slots.size(), 8u);
  ASSERT_EQ(b.context_lens.size(), 8u);
  ASSERT_EQ(b.q_start.size(), 9u);
  ASSERT_EQ(b.decode_q_start.size(), 9u);
  ASSERT_EQ(b.block_tables.size(), 32u);
  ASSERT_EQ(b.sample_rows.size(), 8u);
  EXPECT_EQ(b.sample_seqs, before.sample_seqs) << "only real sequences are sampled";
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(b.order[k], before.order[k]);
    EXPECT_EQ(b.tokens[k], before.tokens[k]);
    EXPECT_EQ(b.positions[k], before.positions[k]);
    EXPECT_EQ(b.slots[k], before.slots[k]);
    EXPECT_EQ(b.context_lens[k], before.context_lens[k]);
    for (int64_t j = 0; j < 4; ++j) {
      const int32_t want = j < before.max_blocks ? before.block_tables[k * before.max_blocks + j]
                                                 : -1;
      EXPECT_EQ(b.block_tables[k * 4 + j], want) << "seq " << k << " block " << j;
    }
  }
  for (size_t s = 0; s < before.sample_rows.size(); ++s) {
    EXPECT_EQ(b.sample_rows[s], before.sample_rows[s]);
  }
  for (int64_t k = 3; k < 8; ++k) {
    EXPECT_EQ(b.order[k], -1);
    EXPECT_EQ(b.tokens[k], 0);
    EXPECT_EQ(b.positions[k], 0);
    EXPECT_EQ(b.slots[k], -1) << "a padding row writes no latent";
    EXPECT_EQ(b.context_lens[k], 1);
    EXPECT_EQ(b.block_tables[k * 4], 4) << "the first sequence's first block";
    for (int64_t j = 1; j < 4; ++j) EXPECT_EQ(b.block_tables[k * 4 + j], -1);
  }
  for (int64_t k = 0; k <= 8; ++k) {
    EXPECT_EQ(b.q_start[k], k);
    EXPECT_EQ(b.decode_q_start[k], k);
  }
  const kernels::RaggedBatch d = b.Decode();
  EXPECT_EQ(d.num_seqs, 8);
  EXPECT_EQ(d.max_blocks_per_seq, 4);
}

TEST(PadToGraphShape, AFullShapeOnlyWidensTheBlockTables) {
  StepBatch batch{.seqs = {Decode(1, 70, {4, 9}), Decode(2, 3, {7})}};
  auto flat = FlattenBatch(batch, Config(), 16);
  ASSERT_TRUE(flat.ok()) << flat.status();
  const auto shape = GraphShapeFor(*flat, 64);
  ASSERT_TRUE(shape.has_value());
  EXPECT_EQ(shape->tokens, 2);
  PadToGraphShape(*flat, *shape);
  EXPECT_EQ(std::count(flat->order.begin(), flat->order.end(), -1), 0) << "padding sequences";
  EXPECT_EQ(flat->num_tokens, 2);
  EXPECT_EQ(flat->block_tables, (std::vector<int32_t>{4, 9, 7, -1}));
}

}  // namespace
}  // namespace mla
