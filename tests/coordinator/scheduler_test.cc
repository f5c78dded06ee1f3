#include "coordinator/scheduler.h"

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/coordinator/fake_model.h"

namespace mla::coordinator {
namespace {

using testing::FakeModel;
using testing::ReferenceOutput;

constexpr int32_t kVocab = 1000;

std::vector<int32_t> Prompt(int64_t n, int32_t salt) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 31 + salt * 7) % kVocab));
  return p;
}

GenerationParams Params(int64_t max_tokens, int32_t priority = 0) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  p.priority = priority;
  return p;
}

std::unique_ptr<Scheduler> Make(const SchedulerOptions& options, int64_t blocks) {
  auto s = Scheduler::Create(options, blocks);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

int64_t AddOk(Scheduler* s, std::vector<int32_t> prompt, GenerationParams params) {
  auto id = s->Add(std::move(prompt), std::move(params));
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : -1;
}

struct Outcome {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kNone;
};

// Schedule, run on the fake model, Commit; invariants and limits checked around every step.
void Step(Scheduler* s, FakeModel* model, const SchedulerOptions& options,
          std::map<int64_t, Outcome>* outcomes, StepPlan* plan_out = nullptr) {
  StepPlan plan = s->Schedule();
  ASSERT_TRUE(s->CheckInvariants().ok()) << s->CheckInvariants();
  EXPECT_LE(plan.num_tokens(), options.max_num_batched_tokens);
  EXPECT_LE(static_cast<int64_t>(plan.seqs.size()), options.max_num_seqs);
  ASSERT_FALSE(plan.seqs.empty()) << "work left but nothing scheduled";
  auto updates = s->Commit(model->Run(plan));
  ASSERT_TRUE(updates.ok()) << updates.status();
  for (const SequenceUpdate& u : *updates) {
    Outcome& o = (*outcomes)[u.seq_id];
    o.tokens.insert(o.tokens.end(), u.new_tokens.begin(), u.new_tokens.end());
    o.reason = u.finish_reason;
  }
  ASSERT_TRUE(s->CheckInvariants().ok()) << s->CheckInvariants();
  if (plan_out != nullptr) *plan_out = std::move(plan);
}

void RunUntilIdle(Scheduler* s, FakeModel* model, const SchedulerOptions& options,
                  std::map<int64_t, Outcome>* outcomes, std::vector<StepPlan>* plans = nullptr) {
  for (int i = 0; i < 100000 && !s->idle(); ++i) {
    StepPlan plan;
    ASSERT_NO_FATAL_FAILURE(Step(s, model, options, outcomes, &plan));
    if (plans != nullptr) plans->push_back(std::move(plan));
  }
  ASSERT_TRUE(s->idle());
  EXPECT_EQ(s->block_manager().num_free_blocks(), s->block_manager().num_blocks());
}

TEST(Scheduler, DecodesComeFirstThenPrefillChunks) {
  SchedulerOptions o;
  o.max_num_batched_tokens = 64;
  auto s = Make(o, 100);
  FakeModel model(100, kVocab);
  const int64_t a = AddOk(s.get(), Prompt(10, 1), Params(5));
  std::map<int64_t, Outcome> out;
  StepPlan first;
  ASSERT_NO_FATAL_FAILURE(Step(s.get(), &model, o, &out, &first));
  ASSERT_EQ(first.seqs.size(), 1u);
  EXPECT_TRUE(first.seqs[0].sample);
  EXPECT_EQ(first.seqs[0].sample_index, 0u);
  EXPECT_EQ(first.seqs[0].block_table.size(), 1u);

  const int64_t b = AddOk(s.get(), Prompt(200, 2), Params(5));
  const StepPlan plan = s->Schedule();
  ASSERT_EQ(plan.seqs.size(), 2u);
  EXPECT_EQ(plan.seqs[0].seq_id, a);  // the decode, although b's prefill could use the budget
  EXPECT_EQ(plan.seqs[0].tokens, std::vector<int32_t>{out[a].tokens[0]});
  EXPECT_EQ(plan.seqs[0].start_pos, 10);
  EXPECT_TRUE(plan.seqs[0].sample);
  EXPECT_EQ(plan.seqs[0].sample_index, 1u);
  EXPECT_EQ(plan.seqs[1].seq_id, b);
  EXPECT_EQ(plan.seqs[1].start_pos, 0);
  EXPECT_EQ(plan.seqs[1].tokens.size(), 63u);  // the rest of the 64-token budget
  EXPECT_FALSE(plan.seqs[1].sample);
  EXPECT_EQ(plan.num_tokens(), 64);
}

TEST(Scheduler, ChunkedPrefillRespectsTheTokenBudget) {
  SchedulerOptions o;
  o.max_num_batched_tokens = 100;
  auto s = Make(o, 100);
  FakeModel model(100, kVocab);
  const int64_t a = AddOk(s.get(), Prompt(250, 1), Params(3));
  const int64_t b = AddOk(s.get(), Prompt(250, 2), Params(3));
  std::map<int64_t, Outcome> out;
  std::vector<StepPlan> plans;
  ASSERT_NO_FATAL_FAILURE(RunUntilIdle(s.get(), &model, o, &out, &plans));
  ASSERT_GE(plans.size(), 4u);
  // a: 100, 100, then 50 that completes its prompt and samples; b gets the other 50.
  ASSERT_EQ(plans[0].seqs.size(), 1u);
  EXPECT_EQ(plans[0].seqs[0].tokens.size(), 100u);
  EXPECT_FALSE(plans[0].seqs[0].sample);
  EXPECT_EQ(plans[0].seqs[0].block_table.size(), 2u);
  EXPECT_EQ(plans[1].seqs[0].start_pos, 100);
  EXPECT_EQ(plans[1].seqs[0].block_table.size(), 4u);
  ASSERT_EQ(plans[2].seqs.size(), 2u);
  EXPECT_EQ(plans[2].seqs[0].seq_id, a);
  EXPECT_EQ(plans[2].seqs[0].start_pos, 200);
  EXPECT_EQ(plans[2].seqs[0].tokens.size(), 50u);
  EXPECT_TRUE(plans[2].seqs[0].sample);
  EXPECT_EQ(plans[2].seqs[1].seq_id, b);
  EXPECT_EQ(plans[2].seqs[1].tokens.size(), 50u);
  EXPECT_FALSE(plans[2].seqs[1].sample);
  // Then a decodes first and b's chunk takes the remaining 99.
  ASSERT_EQ(plans[3].seqs.size(), 2u);
  EXPECT_EQ(plans[3].seqs[0].seq_id, a);
  EXPECT_EQ(plans[3].seqs[0].tokens.size(), 1u);
  EXPECT_EQ(plans[3].seqs[1].tokens.size(), 99u);
  for (const StepPlan& p : plans) EXPECT_LE(p.num_tokens(), 100);
  EXPECT_EQ(out[a].tokens.size(), 3u);
  EXPECT_EQ(out[b].tokens.size(), 3u);
}

TEST(Scheduler, AdmissionWaitsForFreeBlocks) {
  SchedulerOptions o;
  auto s = Make(o, 4);
  FakeModel model(4, kVocab);
  const int64_t a = AddOk(s.get(), Prompt(200, 1), Params(10));  // 4 blocks: the whole cache
  const int64_t b = AddOk(s.get(), Prompt(10, 2), Params(2));
  std::map<int64_t, Outcome> out;
  std::vector<StepPlan> plans;
  ASSERT_NO_FATAL_FAILURE(RunUntilIdle(s.get(), &model, o, &out, &plans));
  bool a_done = false;
  for (const StepPlan& p : plans) {
    for (const SequenceStep& st : p.seqs) {
      if (st.seq_id == a) {
        EXPECT_FALSE(a_done);
      }
      if (st.seq_id == b) a_done = true;  // b may run only once a has finished
    }
  }
  EXPECT_TRUE(a_done);
  EXPECT_EQ(s->num_preemptions(), 0);
  EXPECT_EQ(out[a].tokens.size(), 10u);
  EXPECT_EQ(out[b].tokens.size(), 2u);
}

// Four sequences whose decodes outgrow the cache: preemption must happen, and the preempted ones
// must, after recomputing prompt + generated tokens, produce exactly the unpressured tokens.
TEST(Scheduler, PreemptedSequencesRecomputeToTheSameTokens) {
  for (int64_t budget : {512, 64}) {
    SCOPED_TRACE(budget);
    for (int64_t blocks : {64, 8}) {
      SchedulerOptions o;
      o.max_num_batched_tokens = budget;
      auto s = Make(o, blocks);
      FakeModel model(blocks, kVocab);
      std::vector<int64_t> ids;
      for (int32_t i = 0; i < 4; ++i) ids.push_back(AddOk(s.get(), Prompt(100, i), Params(100)));
      std::map<int64_t, Outcome> out;
      std::vector<StepPlan> plans;
      ASSERT_NO_FATAL_FAILURE(RunUntilIdle(s.get(), &model, o, &out, &plans));
      for (int64_t id : ids) {
        FinishReason reason;
        const std::vector<int32_t> want =
            ReferenceOutput(Prompt(100, static_cast<int32_t>(id - ids[0])), Params(100),
                            /*eos=*/-1, kVocab, &reason);
        EXPECT_EQ(out[id].tokens, want) << "seq " << id << " blocks " << blocks;
        EXPECT_EQ(out[id].reason, FinishReason::kLength);
      }
      if (blocks == 64) {
        EXPECT_EQ(s->num_preemptions(), 0);
        continue;
      }
      EXPECT_GT(s->num_preemptions(), 0);
      // A recompute restarts at 0 and feeds generated tokens back; the chunk that completes it
      // samples the next new token.
      int recomputes = 0;
      for (const StepPlan& p : plans) {
        for (const SequenceStep& st : p.seqs) {
          const int64_t end = st.start_pos + static_cast<int64_t>(st.tokens.size());
          if (end <= 100 || st.start_pos >= 100 || st.sample_index == 0) continue;
          ++recomputes;  // a prefill chunk reaching past the prompt: recomputing outputs
          if (st.sample) {
            EXPECT_EQ(static_cast<int64_t>(st.sample_index), end - 100);
          }
        }
      }
      EXPECT_GT(recomputes, 0);
    }
  }
}

TEST(Scheduler, PriorityFirstThenArrivalOrder) {
  SchedulerOptions o;
  o.max_num_seqs = 1;
  auto s = Make(o, 100);
  FakeModel model(100, kVocab);
  const int64_t low0 = AddOk(s.get(), Prompt(5, 1), Params(2, 0));
  const int64_t high = AddOk(s.get(), Prompt(5, 2), Params(2, 5));
  const int64_t low1 = AddOk(s.get(), Prompt(5, 3), Params(2, 0));
  const int64_t mid = AddOk(s.get(), Prompt(5, 4), Params(2, 1));
  std::map<int64_t, Outcome> out;
  std::vector<StepPlan> plans;
  ASSERT_NO_FATAL_FAILURE(RunUntilIdle(s.get(), &model, o, &out, &plans));
  std::vector<int64_t> order;
  for (const StepPlan& p : plans) {
    for (const SequenceStep& st : p.seqs) {
      if (order.empty() || order.back() != st.seq_id) order.push_back(st.seq_id);
    }
  }
  EXPECT_EQ(order, (std::vector<int64_t>{high, mid, low0, low1}));
}

TEST(Scheduler, PreemptsTheLowestPriorityEvenIfItArrivedFirst) {
  SchedulerOptions o;
  auto s = Make(o, 4);
  FakeModel model(4, kVocab);
  const int64_t low = AddOk(s.get(), Prompt(100, 1), Params(60, 0));
  const int64_t high = AddOk(s.get(), Prompt(100, 2), Params(60, 1));
  std::map<int64_t, Outcome> out;
  int64_t steps = 0;
  while (s->num_preemptions() == 0 && steps++ < 100) {
    StepPlan plan;
    ASSERT_NO_FATAL_FAILURE(Step(s.get(), &model, o, &out, &plan));
    if (s->num_preemptions() > 0) {
      EXPECT_EQ(plan.freed_seq_ids, std::vector<int64_t>{low});
      ASSERT_EQ(plan.seqs.size(), 1u);
      EXPECT_EQ(plan.seqs[0].seq_id, high);
    }
  }
  ASSERT_EQ(s->num_preemptions(), 1);
  ASSERT_NE(s->Find(low), nullptr);
  EXPECT_EQ(s->Find(low)->status(), SequenceStatus::kWaiting);
  EXPECT_EQ(s->Find(low)->num_computed_tokens(), 0);
  // 29 tokens out: the 29th decode (the one that needed position 128, a third block) never ran.
  EXPECT_EQ(s->Find(low)->num_output_tokens(), 29);  // kept for the recompute
  EXPECT_EQ(s->Find(high)->status(), SequenceStatus::kRunning);
  ASSERT_NO_FATAL_FAILURE(RunUntilIdle(s.get(), &model, o, &out));
  FinishReason reason;
  EXPECT_EQ(out[low].tokens, ReferenceOutput(Prompt(100, 1), Params(60), -1, kVocab, &reason));
  EXPECT_EQ(out[high].tokens, ReferenceOutput(Prompt(100, 2), Params(60), -1, kVocab, &reason));
}

TEST(Scheduler, CancelFreesBlocksAtOnce) {
  SchedulerOptions o;
  auto s = Make(o, 10);
  FakeModel model(10, kVocab);
  const int64_t a = AddOk(s.get(), Prompt(150, 1), Params(50));
  const int64_t b = AddOk(s.get(), Prompt(10, 2), Params(50));
  std::map<int64_t, Outcome> out;
  ASSERT_NO_FATAL_FAILURE(Step(s.get(), &model, o, &out));
  EXPECT_EQ(s->block_manager().num_free_blocks(), 10 - 3 - 1);

  auto cancelled = s->Cancel(a);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(cancelled->num_prompt_tokens, 150);
  EXPECT_EQ(cancelled->num_output_tokens, 1);
  EXPECT_EQ(s->block_manager().num_free_blocks(), 9);  // before any further step
  EXPECT_EQ(s->Find(a), nullptr);
  EXPECT_EQ(s->Cancel(a).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(s->CheckInvariants().ok());

  // b is cancelled while its step is in flight: blocks come back now, the late result is dropped.
  const StepPlan plan = s->Schedule();
  EXPECT_EQ(plan.freed_seq_ids, std::vector<int64_t>{a});
  ASSERT_EQ(plan.seqs.size(), 1u);
  ASSERT_TRUE(s->Cancel(b).ok());
  EXPECT_EQ(s->block_manager().num_free_blocks(), 10);
  auto updates = s->Commit(model.Run(plan));
  ASSERT_TRUE(updates.ok()) << updates.status();
  EXPECT_TRUE(updates->empty());

  // A waiting sequence never held blocks and is not reported to workers. b's release waits
  // for the next plan that has seqs.
  const int64_t c = AddOk(s.get(), Prompt(10, 3), Params(5));
  ASSERT_TRUE(s->Cancel(c).ok());
  EXPECT_TRUE(s->idle());
  const StepPlan nothing = s->Schedule();
  EXPECT_TRUE(nothing.seqs.empty());
  EXPECT_TRUE(nothing.freed_seq_ids.empty());
  EXPECT_EQ(nothing.step_id, 0u);
  const int64_t d = AddOk(s.get(), Prompt(10, 4), Params(5));
  const StepPlan next = s->Schedule();
  ASSERT_EQ(next.seqs.size(), 1u);
  EXPECT_EQ(next.seqs[0].seq_id, d);
  EXPECT_EQ(next.step_id, plan.step_id + 1);
  EXPECT_EQ(next.freed_seq_ids, std::vector<int64_t>{b});
  ASSERT_TRUE(s->CheckInvariants().ok());
}

TEST(Scheduler, FullWaitingQueueIsResourceExhausted) {
  SchedulerOptions o;
  o.max_waiting = 2;
  auto s = Make(o, 100);
  AddOk(s.get(), Prompt(5, 1), Params(3));
  AddOk(s.get(), Prompt(5, 2), Params(3));
  auto third = s->Add(Prompt(5, 3), Params(3));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s->num_waiting(), 2);
  s->Schedule();  // admits both
  EXPECT_EQ(s->num_waiting(), 0);
  EXPECT_TRUE(s->Add(Prompt(5, 3), Params(3)).ok());
}

TEST(Scheduler, AddRejectsBadRequestsAndQueuesNothing) {
  SchedulerOptions o;
  o.max_model_len = 300;
  auto s = Make(o, 4);  // 256 positions
  auto code = [&](std::vector<int32_t> prompt, GenerationParams p) {
    return s->Add(std::move(prompt), std::move(p)).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code({}, Params(3)), kInvalid);
  EXPECT_EQ(code({1, -2}, Params(3)), kInvalid);
  EXPECT_EQ(code({1}, Params(0)), kInvalid);
  EXPECT_EQ(code(Prompt(200, 1), Params(101)), kInvalid);  // 301 > max_model_len
  EXPECT_EQ(code(Prompt(200, 1), Params(58)), kInvalid);   // 257 positions > 4 blocks
  GenerationParams p = Params(3);
  p.sampling.top_p = 0.0f;
  EXPECT_EQ(code({1}, p), kInvalid);
  p = Params(3);
  p.sampling.temperature = -1.0f;
  EXPECT_EQ(code({1}, p), kInvalid);
  EXPECT_TRUE(s->idle());
  EXPECT_TRUE(s->Add(Prompt(200, 1), Params(57)).ok());  // exactly 256 positions
  EXPECT_FALSE(Scheduler::Create(o, 0).ok());
  o.max_num_batched_tokens = 0;
  EXPECT_FALSE(Scheduler::Create(o, 4).ok());
}

TEST(Scheduler, StopConditionsFinishAndFreeAtOnce) {
  SchedulerOptions o;
  o.eos_token_id = 42;
  auto s = Make(o, 100);
  GenerationParams stop_at_eos = Params(10);
  stop_at_eos.ignore_eos = false;
  GenerationParams stop_at_7 = Params(10);
  stop_at_7.stop_token_ids = {7};
  const int64_t a = AddOk(s.get(), Prompt(5, 1), stop_at_eos);
  const int64_t b = AddOk(s.get(), Prompt(5, 2), Params(10));  // ignore_eos
  const int64_t c = AddOk(s.get(), Prompt(5, 3), stop_at_7);
  const int64_t d = AddOk(s.get(), Prompt(5, 4), Params(2));
  const StepPlan plan = s->Schedule();
  ASSERT_EQ(plan.seqs.size(), 4u);
  auto updates = s->Commit({plan.step_id, {a, b, c, d}, {42, 42, 7, 5}});
  ASSERT_TRUE(updates.ok()) << updates.status();
  ASSERT_EQ(updates->size(), 4u);
  EXPECT_EQ((*updates)[0].finish_reason, FinishReason::kStopEos);
  EXPECT_EQ((*updates)[0].new_tokens, std::vector<int32_t>{42});
  EXPECT_EQ((*updates)[1].finish_reason, FinishReason::kNone);
  EXPECT_EQ((*updates)[2].finish_reason, FinishReason::kStopToken);
  EXPECT_EQ((*updates)[3].finish_reason, FinishReason::kNone);
  EXPECT_EQ(s->Find(a), nullptr);
  EXPECT_EQ(s->Find(c), nullptr);
  EXPECT_EQ(s->block_manager().num_used_blocks(), 2);  // b and d only

  const StepPlan next = s->Schedule();
  EXPECT_EQ(next.freed_seq_ids, (std::vector<int64_t>{a, c}));
  updates = s->Commit({next.step_id, {b, d}, {1, 1}});
  ASSERT_TRUE(updates.ok());
  EXPECT_EQ((*updates)[1].finish_reason, FinishReason::kLength);
  EXPECT_EQ((*updates)[1].num_output_tokens, 2);
  EXPECT_EQ((*updates)[1].num_prompt_tokens, 5);
  ASSERT_TRUE(s->CheckInvariants().ok());
}

TEST(Scheduler, CommitChecksTheResultBeforeApplyingIt) {
  SchedulerOptions o;
  auto s = Make(o, 100);
  const int64_t a = AddOk(s.get(), Prompt(5, 1), Params(10));
  const int64_t b = AddOk(s.get(), Prompt(5, 2), Params(10));
  const StepPlan plan = s->Schedule();
  EXPECT_EQ(s->Commit({plan.step_id + 1, {a, b}, {1, 2}}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(s->Commit({plan.step_id, {b, a}, {1, 2}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Commit({plan.step_id, {a}, {1}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Commit({plan.step_id, {a, b}, {1, -2}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Find(a)->num_computed_tokens(), 0);  // nothing applied
  EXPECT_EQ(s->Find(a)->num_output_tokens(), 0);
  ASSERT_TRUE(s->Commit({plan.step_id, {a, b}, {1, 2}}).ok());
  EXPECT_EQ(s->Find(a)->num_computed_tokens(), 5);
  EXPECT_EQ(s->Find(b)->output_tokens(), std::vector<int32_t>{2});
}

TEST(Scheduler, AbandonedStepIsPlannedAgainUnchanged) {
  SchedulerOptions o;
  o.max_num_batched_tokens = 100;
  auto s = Make(o, 100);
  AddOk(s.get(), Prompt(150, 1), Params(3));
  const StepPlan first = s->Schedule();
  const StepPlan empty = s->Schedule();  // its only sequence is in flight
  EXPECT_TRUE(empty.seqs.empty());
  EXPECT_EQ(empty.step_id, 0u);
  ASSERT_TRUE(s->Abandon(first.step_id).ok());
  EXPECT_EQ(s->Abandon(first.step_id).code(), absl::StatusCode::kNotFound);
  const StepPlan again = s->Schedule();
  ASSERT_EQ(again.seqs.size(), 1u);
  EXPECT_EQ(again.step_id, first.step_id + 1);
  EXPECT_EQ(again.seqs[0].tokens, first.seqs[0].tokens);
  EXPECT_EQ(again.seqs[0].start_pos, first.seqs[0].start_pos);
  EXPECT_EQ(again.seqs[0].block_table, first.seqs[0].block_table);
  EXPECT_EQ(s->Commit({first.step_id, {}, {}}).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(s->CheckInvariants().ok());
}

}  // namespace
}  // namespace mla::coordinator
