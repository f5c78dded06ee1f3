// A randomized run of the scheduler against the fake model: many requests of random lengths,
// priorities and stop rules arrive over time into a cache too small for them, some are
// cancelled, and with depth 2 two plans are in flight at once (as with two pipeline stages).
// After every Schedule, Commit and Cancel all invariants are checked; at the end every request
// ended exactly once, with the tokens an unpressured run gives, and every block is free again.
#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/scheduler.h"
#include "gtest/gtest.h"
#include "tests/coordinator/fake_model.h"

namespace mla::coordinator {
namespace {

using testing::FakeModel;
using testing::ReferenceOutput;

constexpr int32_t kVocab = 64;  // small, so eos and stop tokens do come up
constexpr int32_t kEos = 0;

struct Request {
  std::vector<int32_t> prompt;
  GenerationParams params;
  std::vector<int32_t> tokens;  // streamed so far
  FinishReason reason = FinishReason::kNone;
  int finals = 0;               // final updates seen; must end as 1
};

struct Sim {
  uint32_t seed;
  int depth;  // plans in flight at once
};

class SchedulerSim : public ::testing::TestWithParam<Sim> {};

TEST_P(SchedulerSim, RandomTrafficKeepsEveryInvariant) {
  const Sim sim = GetParam();
  std::printf("seed %u depth %d\n", sim.seed, sim.depth);
  std::mt19937 rng(sim.seed);
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  SchedulerOptions o;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 12;
  o.max_waiting = 40;
  o.eos_token_id = kEos;
  constexpr int64_t kBlocks = 24;  // 1536 positions: far less than the traffic wants
  auto created = Scheduler::Create(o, kBlocks);
  ASSERT_TRUE(created.ok());
  Scheduler& s = **created;
  FakeModel model(kBlocks, kVocab);

  std::map<int64_t, Request> requests;
  std::set<int64_t> live;
  std::deque<std::pair<StepPlan, StepResult>> in_flight;
  int64_t attempted = 0, rejected = 0, cancels = 0, steps = 0;
  constexpr int64_t kRequests = 400;

  auto check = [&]() {
    ASSERT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants();
    const BlockManager& bm = s.block_manager();
    for (int32_t b = 0; b < bm.num_blocks(); ++b) {
      const int64_t owner = bm.owner(b);
      ASSERT_TRUE(owner == BlockManager::kNoOwner || live.contains(owner))
          << "block " << b << " held by ended sequence " << owner;
    }
  };
  auto apply = [&](const SequenceUpdate& u) {
    ASSERT_TRUE(live.contains(u.seq_id)) << "update for ended sequence " << u.seq_id;
    Request& r = requests[u.seq_id];
    r.tokens.insert(r.tokens.end(), u.new_tokens.begin(), u.new_tokens.end());
    EXPECT_EQ(u.num_output_tokens, static_cast<int64_t>(r.tokens.size()));
    if (u.finish_reason != FinishReason::kNone) {
      r.reason = u.finish_reason;
      ++r.finals;
      live.erase(u.seq_id);
    }
  };
  auto commit_oldest = [&]() {
    auto updates = s.Commit(in_flight.front().second);
    in_flight.pop_front();
    ASSERT_TRUE(updates.ok()) << updates.status();
    for (const SequenceUpdate& u : *updates) ASSERT_NO_FATAL_FAILURE(apply(u));
    ASSERT_NO_FATAL_FAILURE(check());
  };

  while (attempted < kRequests || !s.idle() || !in_flight.empty()) {
    ASSERT_LT(++steps, 200000) << "no progress";
    // Arrivals.
    // About the rate the cache can serve, with one burst that overflows the waiting queue.
    const bool burst = steps >= 2000 && steps < 2080;
    const int64_t arrivals = burst ? 1 : uniform(0, 99) < 5 ? uniform(1, 2) : 0;
    for (int64_t n = arrivals; n > 0 && attempted < kRequests; --n, ++attempted) {
      Request r;
      const int64_t len = uniform(0, 9) < 7 ? uniform(1, 200) : uniform(200, 700);
      for (int64_t i = 0; i < len; ++i) r.prompt.push_back(uniform(0, kVocab - 1));
      r.params.max_tokens = uniform(1, 200);
      r.params.priority = static_cast<int32_t>(uniform(0, 2));
      r.params.ignore_eos = uniform(0, 1) == 1;
      if (uniform(0, 9) < 3) r.params.stop_token_ids = {static_cast<int32_t>(uniform(1, 63))};
      auto id = s.Add(r.prompt, r.params);
      if (!id.ok()) {
        ASSERT_EQ(id.status().code(), absl::StatusCode::kResourceExhausted) << id.status();
        ++rejected;
        continue;
      }
      live.insert(*id);
      requests.emplace(*id, std::move(r));
    }
    // A client goes away now and then.
    if (!live.empty() && uniform(0, 999) < 3) {
      auto it = live.begin();
      std::advance(it, uniform(0, static_cast<int64_t>(live.size()) - 1));
      const int64_t free_before = s.block_manager().num_free_blocks();
      const int64_t held = static_cast<int64_t>(s.Find(*it)->block_table().size());
      auto update = s.Cancel(*it);
      ASSERT_TRUE(update.ok()) << update.status();
      EXPECT_EQ(update->finish_reason, FinishReason::kCancelled);
      EXPECT_EQ(s.block_manager().num_free_blocks(), free_before + held);
      ASSERT_NO_FATAL_FAILURE(apply(*update));
      ++cancels;
      ASSERT_NO_FATAL_FAILURE(check());
    }
    StepPlan plan = s.Schedule();
    ASSERT_NO_FATAL_FAILURE(check());
    ASSERT_LE(plan.num_tokens(), o.max_num_batched_tokens);
    ASSERT_LE(static_cast<int64_t>(plan.seqs.size()), o.max_num_seqs);
    const bool empty = plan.seqs.empty();
    if (empty) {
      // Nothing schedulable is only right while steps are in flight or nothing is left.
      ASSERT_TRUE(!in_flight.empty() || s.idle()) << "stalled with work left";
    } else {
      StepResult result = model.Run(plan);  // workers run steps in order, as they arrive
      in_flight.emplace_back(std::move(plan), std::move(result));
    }
    if (!in_flight.empty() && (empty || static_cast<int>(in_flight.size()) >= sim.depth)) {
      ASSERT_NO_FATAL_FAILURE(commit_oldest());
    }
  }

  EXPECT_TRUE(live.empty());
  EXPECT_EQ(s.block_manager().num_free_blocks(), kBlocks);
  int64_t finished = 0, by_eos = 0, by_stop = 0, by_length = 0;
  for (const auto& [id, r] : requests) {
    ASSERT_EQ(r.finals, 1) << "sequence " << id;
    FinishReason want_reason;
    const std::vector<int32_t> want =
        ReferenceOutput(r.prompt, r.params, kEos, kVocab, &want_reason);
    if (r.reason == FinishReason::kCancelled) {
      ASSERT_LE(r.tokens.size(), want.size());
      EXPECT_TRUE(std::equal(r.tokens.begin(), r.tokens.end(), want.begin())) << "seq " << id;
      continue;
    }
    ++finished;
    by_eos += r.reason == FinishReason::kStopEos;
    by_stop += r.reason == FinishReason::kStopToken;
    by_length += r.reason == FinishReason::kLength;
    EXPECT_EQ(r.tokens, want) << "sequence " << id;
    EXPECT_EQ(r.reason, want_reason) << "sequence " << id;
  }
  std::printf("steps %lld accepted %zu rejected %lld cancelled %lld preemptions %lld; finished "
              "%lld (eos %lld, stop token %lld, length %lld)\n",
              static_cast<long long>(steps), requests.size(), static_cast<long long>(rejected),
              static_cast<long long>(cancels), static_cast<long long>(s.num_preemptions()),
              static_cast<long long>(finished), static_cast<long long>(by_eos),
              static_cast<long long>(by_stop), static_cast<long long>(by_length));
  // The run must have exercised what it claims to.
  EXPECT_GT(s.num_preemptions(), 0);
  EXPECT_GT(cancels, 0);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(by_eos, 0);
  EXPECT_GT(by_stop, 0);
  EXPECT_GT(by_length, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerSim,
                         ::testing::Values(Sim{1, 1}, Sim{2, 1}, Sim{3, 1}, Sim{1, 2},
                                           Sim{4, 2}),
                         [](const ::testing::TestParamInfo<Sim>& info) {
                           return "seed" + std::to_string(info.param.seed) + "_depth" +
                                  std::to_string(info.param.depth);
                         });

}  // namespace
}  // namespace mla::coordinator
