// LoadShard and StepExecutor on the tiny checkpoint: a shard loads for its Assignment (and
// refuses another model's config hash), and steps sent as the coordinator sends them (block
// table deltas, freed ids) give the same tokens as the in-process generator.
#include "worker/service/step_executor.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "coordinator/config_hash.h"
#include "gtest/gtest.h"
#include "worker/generator.h"
#include "worker/service/shard_loader.h"

namespace mla::worker_service {
namespace {

std::string TinyDir() {
  const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
  return dir == nullptr ? "" : dir;
}

v1::Assignment WholeModel(const std::string& dir) {
  v1::Assignment a;
  a.set_tp_size(1);
  a.set_pp_size(1);
  a.set_first_layer(0);
  a.set_end_layer(4);
  a.set_checkpoint_path(dir);
  a.set_config_hash(ConfigHash(*ReadConfigJson(dir)));
  return a;
}

class StepExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (TinyDir().empty()) GTEST_SKIP() << "MLA_TINY_CHECKPOINT is not set";
    auto shard = LoadShard(TinyDir(), WholeModel(TinyDir()), {.requested_blocks = 16}, {});
    ASSERT_TRUE(shard.ok()) << shard.status();
    shard_ = std::move(*shard);
  }
  LoadedShard shard_;
};

TEST_F(StepExecutorTest, LoadsTheAssignedShard) {
  EXPECT_EQ(shard_.cache->num_blocks(), 16);
  EXPECT_EQ(shard_.model->num_local_layers(), 4);
  EXPECT_GT(shard_.weight_bytes, 0);
  v1::Assignment other = WholeModel(TinyDir());
  other.set_config_hash("0123456789abcdef");
  auto refused = LoadShard(TinyDir(), other, {}, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(StepExecutorTest, DeltaStepsGiveTheGeneratorsTokens) {
  const std::vector<int32_t> prompt = {5, 6, 7, 8};
  constexpr int kTokens = 70;  // decoding crosses from block 11 into block 2
  GenerateRequest request{.prompt = prompt, .max_tokens = kTokens, .ignore_eos = true};
  auto expected = Generate(*shard_.model, {request});
  ASSERT_TRUE(expected.ok()) << expected.status();

  StepExecutor executor(shard_.model.get(), shard_.cache.get(), /*returns_tokens=*/true,
                        /*step_graphs=*/true);
  std::vector<int32_t> got;
  for (int i = 0; i < kTokens; ++i) {
    v1::Step step;
    step.set_step_id(i + 1);
    v1::SequenceStep* s = step.add_seqs();
    s->set_seq_id(42);
    s->set_sample(true);
    s->set_sample_index(i);
    if (i == 0) {
      s->mutable_tokens()->Assign(prompt.begin(), prompt.end());
      s->add_block_table(11);  // full table, offset 0
    } else {
      s->add_tokens(got.back());
      s->set_start_pos(static_cast<int32_t>(prompt.size()) + i - 1);
      // The worker keeps what it was sent; only a new block travels.
      s->set_block_table_offset(s->start_pos() > 64 ? 2 : 1);
      if (s->start_pos() == 64) s->add_block_table(2);
    }
    const v1::StepResult result = executor.Run(step);
    ASSERT_FALSE(result.has_error()) << result.error();
    ASSERT_EQ(result.seq_ids_size(), 1);
    EXPECT_EQ(result.seq_ids(0), 42);
    got.push_back(result.tokens(0));
  }
  EXPECT_EQ(got, (*expected)[0].tokens);
  EXPECT_EQ(executor.table(42), (std::vector<int32_t>{11, 2}));

  v1::Step freed;  // a step that only frees: the table is forgotten
  freed.set_step_id(kTokens + 1);
  freed.add_freed_seq_ids(42);
  ASSERT_TRUE(executor.ToBatch(freed).ok());
  EXPECT_EQ(executor.num_tracked_sequences(), 0);
}

TEST_F(StepExecutorTest, ReportsErrorsAndOnlyTheSamplingRankReturnsTokens) {
  StepExecutor quiet(shard_.model.get(), shard_.cache.get(), /*returns_tokens=*/false,
                     /*step_graphs=*/true);
  v1::Step step;
  step.set_step_id(1);
  v1::SequenceStep* s = step.add_seqs();
  s->set_seq_id(1);
  s->add_tokens(3);
  s->add_block_table(0);
  s->set_sample(true);
  v1::StepResult result = quiet.Run(step);
  EXPECT_FALSE(result.has_error()) << result.error();
  EXPECT_EQ(result.step_id(), 1u);
  EXPECT_EQ(result.seq_ids_size(), 0);

  StepExecutor executor(shard_.model.get(), shard_.cache.get(), true, /*step_graphs=*/true);
  s->set_tokens(0, 5000);  // outside the vocabulary
  result = executor.Run(step);
  ASSERT_TRUE(result.has_error());
  EXPECT_NE(result.error().find("5000"), std::string::npos) << result.error();
  s->set_tokens(0, 3);
  s->set_block_table(0, 16);  // outside the cache
  result = executor.Run(step);
  ASSERT_TRUE(result.has_error());
  EXPECT_NE(result.error().find("block id 16"), std::string::npos) << result.error();
}

}  // namespace
}  // namespace mla::worker_service
