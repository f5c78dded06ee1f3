// Engine over a fake worker group (the D5 fault seam): requests stream to their end and give
// their blocks back; cancellation frees blocks at once; a worker that dies or hangs fails the
// in-flight requests with UNAVAILABLE within the step timeout, and the engine serves again once
// the group is whole; drain (StopAccepting, CancelAll, WaitIdle) ends every request once.
#include "coordinator/engine.h"

#include <cstdint>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

// A group whose "model" samples token (start_pos + tokens) % 97 + 2 and can fail or hang.
class FakeGroup : public WorkerGroup {
 public:
  GroupState State() const override {
    absl::MutexLock lock(&mu_);
    return {.ready = ready_, .epoch = epoch_, .num_cache_blocks = 32,
            .detail = ready_ ? "" : "missing rank 0"};
  }
  absl::Status SendStep(const v1::Step& step) override {
    absl::MutexLock lock(&mu_);
    if (!ready_) return absl::UnavailableError("not ready");
    last_ = step;
    ++steps_;
    return absl::OkStatus();
  }
  absl::StatusOr<v1::StepResult> AwaitStepResult(uint64_t step_id,
                                                 absl::Duration timeout) override {
    absl::SleepFor(step_time_);
    absl::MutexLock lock(&mu_);
    if (hang_) {
      mu_.AwaitWithTimeout(absl::Condition(&never_), timeout);
      ready_ = false;
      return absl::DeadlineExceededError("rank 0: no answer");
    }
    if (die_at_step_ > 0 && steps_ >= die_at_step_) {
      ready_ = false;
      return absl::UnavailableError("rank 0 failed: the stream broke");
    }
    v1::StepResult result;
    result.set_step_id(step_id);
    for (const v1::SequenceStep& s : last_.seqs()) {
      if (!s.sample()) continue;
      result.add_seq_ids(s.seq_id());
      result.add_tokens((s.start_pos() + s.tokens_size()) % 97 + 2);
    }
    return result;
  }
  void SetOnChange(std::function<void()> on_change) override { on_change_ = on_change; }
  void set_step_time(absl::Duration d) { step_time_ = d; }  // before steps run

  void Set(bool ready, int die_at_step = 0, bool hang = false) {
    {
      absl::MutexLock lock(&mu_);
      if (ready && !ready_) ++epoch_;
      ready_ = ready;
      die_at_step_ = die_at_step;
      hang_ = hang;
    }
    if (on_change_) on_change_();
  }

 private:
  mutable absl::Mutex mu_;
  bool ready_ = false, hang_ = false, never_ = false;
  uint64_t epoch_ = 0;
  int64_t steps_ = 0, die_at_step_ = 0;
  v1::Step last_;
  std::function<void()> on_change_;
  absl::Duration step_time_ = absl::ZeroDuration();  // each step takes this long
};

class Sink final : public RequestSink {
 public:
  void OnUpdate(const SequenceUpdate& u) override {
    absl::MutexLock lock(&mu_);
    tokens_.insert(tokens_.end(), u.new_tokens.begin(), u.new_tokens.end());
    if (u.finish_reason != FinishReason::kNone) ++finals_, reason_ = u.finish_reason;
  }
  void OnError(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    ++finals_;
    error_ = status;
  }
  bool WaitFinal(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finals_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  bool WaitTokens(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return tokens_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  int finals() { absl::MutexLock lock(&mu_); return finals_; }
  size_t num_tokens() { absl::MutexLock lock(&mu_); return tokens_.size(); }
  FinishReason reason() { absl::MutexLock lock(&mu_); return reason_; }
  absl::Status error() { absl::MutexLock lock(&mu_); return error_; }

 private:
  absl::Mutex mu_;
  std::vector<int32_t> tokens_;
  int finals_ = 0;
  FinishReason reason_ = FinishReason::kNone;
  absl::Status error_;
};

ValidatedRequest Request(int64_t max_tokens) {
  ValidatedRequest r;
  r.prompt = {1, 2, 3, 4, 5};
  r.params.max_tokens = max_tokens;
  return r;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::make_unique<Engine>(
        EngineOptions{.scheduler = {.max_model_len = 4096}, .step_timeout = absl::Seconds(1)},
        &group_, nullptr);
    engine_->Start();
  }
  bool WaitStats(std::function<bool(const EngineStats&)> pred) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (pred(engine_->Stats())) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  absl::Status Submit(int64_t max_tokens, Sink* sink, uint64_t* ticket = nullptr) {
    uint64_t t = 0;
    absl::Status s = engine_->Submit(Request(max_tokens), sink, ticket ? ticket : &t);
    return s;
  }
  FakeGroup group_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, UnavailableUntilTheGroupIsReady) {
  Sink sink;
  absl::Status s = Submit(4, &sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("missing rank 0"), std::string::npos) << s.message();
  group_.Set(true);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  ASSERT_TRUE(Submit(6, &sink).ok());
  ASSERT_TRUE(sink.WaitFinal(absl::Seconds(10)));
  EXPECT_EQ(sink.num_tokens(), 6u);
  EXPECT_EQ(sink.reason(), FinishReason::kLength);
  EXPECT_TRUE(WaitStats([](const EngineStats& s) { return s.cache_blocks_free == 32; }));
}

TEST_F(EngineTest, CancelFreesBlocksAtOnce) {
  group_.Set(true);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  Sink sink;
  uint64_t ticket = 0;
  ASSERT_TRUE(Submit(1000, &sink, &ticket).ok());
  ASSERT_TRUE(sink.WaitTokens(3));
  engine_->Cancel(ticket);
  ASSERT_TRUE(sink.WaitFinal(absl::Seconds(10)));
  EXPECT_EQ(sink.reason(), FinishReason::kCancelled);
  EXPECT_TRUE(WaitStats([](const EngineStats& s) {
    return s.cache_blocks_free == 32 && s.num_running == 0;
  }));
  EXPECT_EQ(sink.finals(), 1);
}

TEST_F(EngineTest, DeadWorkerFailsRequestsWithUnavailableThenServesAgain) {
  group_.Set(true, /*die_at_step=*/5);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  Sink a, b;
  ASSERT_TRUE(Submit(100, &a).ok());
  ASSERT_TRUE(Submit(100, &b).ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(a.WaitFinal(absl::Seconds(5)));
  ASSERT_TRUE(b.WaitFinal(absl::Seconds(5)));
  std::printf("failed %.3f s after submitting\n", absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_EQ(a.error().code(), absl::StatusCode::kUnavailable) << a.error();
  EXPECT_NE(a.error().message().find("rank 0"), std::string::npos) << a.error();
  EXPECT_EQ(b.error().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return !s.serving; }));

  group_.Set(true);  // a replacement worker: a new epoch
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  Sink c;
  ASSERT_TRUE(Submit(5, &c).ok());
  ASSERT_TRUE(c.WaitFinal(absl::Seconds(10)));
  EXPECT_TRUE(c.error().ok()) << c.error();
  EXPECT_EQ(c.num_tokens(), 5u);
}

// Regression: a failed step dropped the scheduler before the loop compared serving states, so
// health stayed SERVING after a worker died.
TEST(EngineServing, CallbackHearsEveryChangeIncludingAFailedStep) {
  FakeGroup group;
  absl::Mutex mu;
  std::vector<bool> heard;
  Engine engine({}, &group, [&](bool serving) {
    absl::MutexLock lock(&mu);
    heard.push_back(serving);
  });
  engine.Start();
  auto wait_heard = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() { return heard.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  };
  group.Set(true, /*die_at_step=*/3);
  ASSERT_TRUE(wait_heard(1));
  Sink sink;
  uint64_t ticket;
  ASSERT_TRUE(engine.Submit(Request(50), &sink, &ticket).ok());
  ASSERT_TRUE(sink.WaitFinal(absl::Seconds(10)));
  ASSERT_TRUE(wait_heard(2));
  group.Set(true);
  ASSERT_TRUE(wait_heard(3));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(heard, (std::vector<bool>{true, false, true}));
}

TEST_F(EngineTest, HungWorkerFailsRequestsAfterTheStepTimeout) {
  group_.Set(true, 0, /*hang=*/true);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  Sink a;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(Submit(10, &a).ok());
  ASSERT_TRUE(a.WaitFinal(absl::Seconds(5)));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("failed %.3f s after submitting (step timeout 1 s)\n", seconds);
  EXPECT_EQ(a.error().code(), absl::StatusCode::kUnavailable) << a.error();
  EXPECT_GE(seconds, 0.9);
}

TEST_F(EngineTest, DrainEndsEveryRequestOnce) {
  group_.set_step_time(absl::Milliseconds(2));  // 300 tokens take longer than the checks
  group_.Set(true);
  ASSERT_TRUE(WaitStats([](const EngineStats& s) { return s.serving; }));
  std::vector<Sink> sinks(5);
  for (Sink& s : sinks) ASSERT_TRUE(Submit(300, &s).ok());  // 5 x 5 blocks of 32
  ASSERT_TRUE(sinks[0].WaitTokens(2));
  engine_->StopAccepting();
  Sink late;
  EXPECT_EQ(Submit(3, &late).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(engine_->WaitIdle(absl::Milliseconds(50)));
  engine_->CancelAll();
  ASSERT_TRUE(engine_->WaitIdle(absl::Seconds(10)));
  for (Sink& s : sinks) {
    EXPECT_EQ(s.finals(), 1);
    EXPECT_EQ(s.reason(), FinishReason::kCancelled);
  }
  EXPECT_TRUE(WaitStats([](const EngineStats& s) { return s.cache_blocks_free == 32; }));
  engine_->Stop();
  for (Sink& s : sinks) EXPECT_EQ(s.finals(), 1) << "no second final after Stop";
}

// Overload: at most max_num_seqs + max_waiting live requests (beyond: ResourceExhausted from
// Submit itself), and a request queued longer than queue_timeout ends with DeadlineExceeded.
TEST(EngineOverload, RefusedAtOnceBeyondTheLimitAndQueuedRequestsTimeOut) {
  FakeGroup group;
  group.set_step_time(absl::Milliseconds(2));
  Engine engine({.scheduler = {.max_num_seqs = 1, .max_waiting = 3, .max_model_len = 4096},
                 .queue_timeout = absl::Milliseconds(300)},
                &group, nullptr);
  engine.Start();
  group.Set(true);
  for (int i = 0; i < 500 && !engine.Stats().serving; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(engine.Stats().serving);
  Sink running;
  uint64_t running_ticket = 0, ticket = 0;
  ASSERT_TRUE(engine.Submit(Request(1500), &running, &running_ticket).ok());
  ASSERT_TRUE(running.WaitTokens(1));
  std::vector<Sink> queued(3);
  for (Sink& s : queued) ASSERT_TRUE(engine.Submit(Request(4), &s, &ticket).ok());
  Sink refused;
  const absl::Time start = absl::Now();
  const absl::Status s = engine.Submit(Request(4), &refused, &ticket);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("max_waiting 3"), std::string::npos) << s.message();
  for (Sink& q : queued) {
    ASSERT_TRUE(q.WaitFinal(absl::Seconds(5)));
    EXPECT_EQ(q.error().code(), absl::StatusCode::kDeadlineExceeded) << q.error();
    EXPECT_NE(q.error().message().find("queue"), std::string::npos) << q.error();
  }
  EXPECT_EQ(running.finals(), 0) << "the running request is not subject to the queue timeout";
  engine.Cancel(running_ticket);
  ASSERT_TRUE(engine.WaitIdle(absl::Seconds(10)));
  for (Sink& q : queued) EXPECT_EQ(q.finals(), 1);
  EXPECT_EQ(running.finals(), 1);
  EXPECT_EQ(refused.finals(), 0);
}

}  // namespace
}  // namespace mla::coordinator
