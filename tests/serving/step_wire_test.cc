// StepEncoder (coordinator) and StepExecutor::ToBatch (worker) together: the block tables a
// worker rebuilds from the deltas equal the scheduler's full tables at every step, through chunked
// prefills, decodes, preemptions and cancellations; sequence ids carry the group's base.
#include <cstdint>
#include <vector>

#include "coordinator/scheduler.h"
#include "coordinator/step_wire.h"
#include "gtest/gtest.h"
#include "worker/service/step_executor.h"

namespace mla::coordinator {
namespace {

constexpr int64_t kBase = int64_t{3} << 40;

TEST(StepWire, WorkerTablesFollowTheSchedulerThroughPreemptionAndCancel) {
  SchedulerOptions options{.max_num_batched_tokens = 40, .max_num_seqs = 8};
  auto scheduler = Scheduler::Create(options, /*num_cache_blocks=*/6);
  ASSERT_TRUE(scheduler.ok());
  Scheduler& s = **scheduler;
  StepEncoder encoder(kBase);
  worker_service::StepExecutor executor(nullptr, nullptr, /*returns_tokens=*/true,
                                        /*step_graphs=*/true);

  std::vector<int64_t> ids;
  for (int n : {70, 20, 100, 5}) {
    GenerationParams p;
    p.max_tokens = 60;
    auto id = s.Add(std::vector<int32_t>(n, 7), p);
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  int64_t steps = 0, deltas = 0;
  uint64_t wire_id = 1;
  while (!s.idle() && steps < 2000) {
    if (steps == 30) {
      ASSERT_TRUE(s.Cancel(ids[3]).ok());
    }
    const StepPlan plan = s.Schedule();
    ASSERT_NE(plan.step_id, 0u) << "a lone scheduler always makes progress";
    const v1::Step step = encoder.Encode(plan, wire_id++);
    auto batch = executor.ToBatch(step);
    ASSERT_TRUE(batch.ok()) << batch.status();
    ASSERT_EQ(batch->seqs.size(), plan.seqs.size());
    v1::StepResult result;
    result.set_step_id(step.step_id());
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      EXPECT_EQ(batch->seqs[i].seq_id, kBase + plan.seqs[i].seq_id);
      EXPECT_EQ(batch->seqs[i].block_table, plan.seqs[i].block_table) << "step " << steps;
      EXPECT_EQ(batch->seqs[i].tokens, plan.seqs[i].tokens);
      EXPECT_EQ(batch->seqs[i].start_pos, plan.seqs[i].start_pos);
      deltas += step.seqs(i).block_table_offset() > 0 ? 1 : 0;
      if (plan.seqs[i].sample) {
        result.add_seq_ids(kBase + plan.seqs[i].seq_id);
        result.add_tokens(static_cast<int32_t>(10 + steps % 50));
      }
    }
    auto decoded = encoder.Decode(result, plan);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_TRUE(s.Commit(*decoded).ok());
    ASSERT_TRUE(s.CheckInvariants().ok());
    ++steps;
  }
  EXPECT_TRUE(s.idle());
  EXPECT_GT(s.num_preemptions(), 0) << "6 blocks for four sequences must preempt";
  EXPECT_GT(deltas, steps / 2) << "most entries should be sent as deltas";
  std::printf("%lld steps, %lld delta tables, %lld preemptions\n", static_cast<long long>(steps),
              static_cast<long long>(deltas), static_cast<long long>(s.num_preemptions()));
}

TEST(StepWire, DecodeChecksTheAnswer) {
  StepEncoder encoder(kBase);
  StepPlan plan;
  plan.step_id = 9;
  v1::StepResult result;
  result.set_step_id(1);
  result.add_seq_ids(kBase + 5);
  result.add_tokens(3);
  auto ok = encoder.Decode(result, plan);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->step_id, 9u);
  EXPECT_EQ(ok->seq_ids, (std::vector<int64_t>{5}));
  result.set_seq_ids(0, 5);  // not this group's
  EXPECT_EQ(encoder.Decode(result, plan).status().code(), absl::StatusCode::kInvalidArgument);
  result.set_error("boom");
  EXPECT_EQ(encoder.Decode(result, plan).status().code(), absl::StatusCode::kInternal);
}

TEST(StepWire, ExecutorRefusesAnOffsetPastWhatItKeeps) {
  worker_service::StepExecutor executor(nullptr, nullptr, true, /*step_graphs=*/true);
  v1::Step step;
  step.set_step_id(1);
  v1::SequenceStep* seq = step.add_seqs();
  seq->set_seq_id(4);
  seq->add_tokens(1);
  seq->set_block_table_offset(2);
  seq->add_block_table(0);
  auto batch = executor.ToBatch(step);
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("block_table_offset 2 but only 0"), std::string::npos)
      << batch.status().message();
}

}  // namespace
}  // namespace mla::coordinator
