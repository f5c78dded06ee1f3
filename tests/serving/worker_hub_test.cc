// WorkerHub behind fake worker links (no gRPC): a tp x pp group forms once every rank registers
// and loads; pipelined steps are answered in order, the last stage's tp-rank 0 carrying the
// tokens; a worker that fails mid-step ends every step in flight with UNAVAILABLE at once,
// blaming no survivor, and no step record is left behind, by the hub alone or under the Engine's
// pipelined step loop; the failed formation's store prefix is abandoned; the group re-forms when
// the rank registers again.
#include "coordinator/worker_hub.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/engine.h"
#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

constexpr int kTp = 2, kPp = 2, kWorld = kTp * kPp;

// A worker's stream as the hub sees it. Records what the hub sends; with auto_answer it answers
// each Step at once, from inside Send, as a worker on the other end of the stream would. The
// last stage's tp-rank 0 (known from its Assignment) samples token (start_pos + n) % 97 + 2.
class FakeLink final : public WorkerLink {
 public:
  FakeLink(ConnectionListener* hub, std::string name) : hub_(hub), name_(std::move(name)) {}
  ~FakeLink() override = default;

  const std::string& peer() const override { return name_; }
  void Send(const v1::CoordinatorMessage& message) override {
    bool answer = false;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      sent_.push_back(message);
      answer = auto_answer_ && message.has_step();
    }
    if (answer) Answer(message.step().step_id());
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (!closed_) close_status_ = status;
    closed_ = true;
  }
  void Ref() override { refs_.fetch_add(1); }
  void Unref() override { refs_.fetch_sub(1); }

  // Answers the step it was sent with `step_id`: an error if `error` is not empty.
  void Answer(uint64_t step_id, const std::string& error = "", bool peer_failed = false) {
    v1::WorkerMessage out;
    v1::StepResult* result = out.mutable_step_result();
    result->set_step_id(step_id);
    if (!error.empty()) {
      result->set_error(error);
      result->set_peer_failed(peer_failed);
    } else if (Samples()) {
      const v1::Step step = Find(step_id);
      for (const v1::SequenceStep& s : step.seqs()) {
        if (!s.sample()) continue;
        result->add_seq_ids(s.seq_id());
        result->add_tokens((s.start_pos() + s.tokens_size()) % 97 + 2);
      }
    }
    hub_->OnMessage(this, out);
  }
  void set_auto_answer(bool on) { absl::MutexLock lock(&mu_); auto_answer_ = on; }

  std::vector<uint64_t> StepIds() const {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> ids;
    for (const auto& m : sent_) {
      if (m.has_step()) ids.push_back(m.step().step_id());
    }
    return ids;
  }
  int Count(v1::CoordinatorMessage::MsgCase what) const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& m : sent_) n += m.msg_case() == what ? 1 : 0;
    return n;
  }
  uint64_t LastFormation() const {  // of the last LoadModel; 0 if none came
    absl::MutexLock lock(&mu_);
    uint64_t formation = 0;
    for (const auto& m : sent_) {
      if (m.has_load_model()) formation = m.load_model().formation();
    }
    return formation;
  }
  bool closed() const { absl::MutexLock lock(&mu_); return closed_; }
  int refs() const { return refs_.load(); }

 private:
  bool Samples() const {
    absl::MutexLock lock(&mu_);
    for (auto m = sent_.rbegin(); m != sent_.rend(); ++m) {
      if (!m->has_assignment()) continue;
      return m->assignment().stage() + 1 == m->assignment().pp_size() &&
             m->assignment().tp_rank() == 0;
    }
    return false;
  }
  v1::Step Find(uint64_t step_id) const {
    absl::MutexLock lock(&mu_);
    for (const auto& m : sent_) {
      if (m.has_step() && m.step().step_id() == step_id) return m.step();
    }
    return v1::Step();
  }

  ConnectionListener* const hub_;
  const std::string name_;
  std::atomic<int> refs_{0};  // the hub's references
  mutable absl::Mutex mu_;
  std::vector<v1::CoordinatorMessage> sent_ ABSL_GUARDED_BY(mu_);
  bool auto_answer_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
};

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

v1::Step MakeStep(uint64_t step_id) {
  v1::Step step;
  step.set_step_id(step_id);
  v1::SequenceStep* seq = step.add_seqs();
  seq->set_seq_id(7);
  seq->add_tokens(1);
  seq->add_tokens(2);
  seq->set_sample(true);
  return step;
}

class Sink final : public RequestSink {
 public:
  void OnUpdate(const SequenceUpdate& u) override {
    absl::MutexLock lock(&mu_);
    tokens_ += static_cast<int>(u.new_tokens.size());
    if (u.finish_reason != FinishReason::kNone) ++finals_;
  }
  void OnError(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    ++finals_;
    error_ = status;
  }
  int finals() const { absl::MutexLock lock(&mu_); return finals_; }
  int tokens() const { absl::MutexLock lock(&mu_); return tokens_; }
  absl::Status error() const { absl::MutexLock lock(&mu_); return error_; }

 private:
  mutable absl::Mutex mu_;
  int finals_ = 0, tokens_ = 0;
  absl::Status error_;
};

class WorkerHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<WorkerHub>> hub = WorkerHub::Create(
        {.tp_size = kTp, .pp_size = kPp,
         .model = {.name = "fake", .config_hash = "c0ffee", .num_layers = 4, .num_heads = 4},
         .on_abandon = [this](const std::string& prefix, const std::string& why) {
           absl::MutexLock lock(&abandoned_mu_);
           abandoned_.push_back(prefix + " " + why);
         }});
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = std::move(*hub);
  }
  void TearDown() override {  // every reference the hub took is given back
    engine_.reset();
    hub_.reset();
    for (const auto& link : links_) EXPECT_EQ(link->refs(), 0) << link->peer();
  }

  // The formations the hub abandoned so far ("prefix why").
  std::vector<std::string> Abandoned() {
    absl::MutexLock lock(&abandoned_mu_);
    return abandoned_;
  }

  // A new worker asks for `rank`; it is workers_[rank] from then on.
  FakeLink* Join(int rank) {
    links_.push_back(std::make_unique<FakeLink>(hub_.get(), absl::StrCat("w", links_.size())));
    v1::WorkerMessage reg;
    reg.mutable_register_()->set_host(links_.back()->peer());
    reg.mutable_register_()->set_config_hash("c0ffee");
    reg.mutable_register_()->set_preferred_rank(rank);
    hub_->OnMessage(links_.back().get(), reg);
    return workers_[rank] = links_.back().get();
  }
  // Every rank answers its last LoadModel.
  void LoadAll() {
    for (FakeLink* link : workers_) {
      v1::WorkerMessage loaded;
      loaded.mutable_loaded()->set_num_cache_blocks(64);
      loaded.mutable_loaded()->set_formation(link->LastFormation());
      hub_->OnMessage(link, loaded);
    }
  }
  void Form() {
    for (int r = 0; r < kWorld; ++r) Join(r);
    LoadAll();
    ASSERT_TRUE(hub_->State().ready) << hub_->State().detail;
  }

  std::vector<std::unique_ptr<FakeLink>> links_;  // outlive the hub
  Sink sinks_[3];                                  // outlive the engine
  std::unique_ptr<WorkerHub> hub_;
  std::unique_ptr<Engine> engine_;
  FakeLink* workers_[kWorld] = {};  // the current link of each rank
  absl::Mutex abandoned_mu_;
  std::vector<std::string> abandoned_ ABSL_GUARDED_BY(abandoned_mu_);
};

TEST_F(WorkerHubTest, GroupFormsOnceEveryRankRegistersAndLoads) {
  for (int r = kWorld - 1; r > 0; --r) Join(r);
  EXPECT_EQ(workers_[1]->Count(v1::CoordinatorMessage::kAssignment), 0);
  Join(0);
  for (FakeLink* link : workers_) {
    EXPECT_EQ(link->Count(v1::CoordinatorMessage::kAssignment), 1) << link->peer();
    EXPECT_EQ(link->LastFormation(), 1u) << link->peer();
  }
  EXPECT_FALSE(hub_->State().ready);
  LoadAll();
  const GroupState state = hub_->State();
  EXPECT_TRUE(state.ready) << state.detail;
  EXPECT_EQ(state.epoch, 1u);
  EXPECT_EQ(state.num_cache_blocks, 64);
}

TEST_F(WorkerHubTest, PipelinedStepsAreAnsweredInOrder) {
  Form();
  ASSERT_TRUE(hub_->SendStep(MakeStep(1)).ok());
  ASSERT_TRUE(hub_->SendStep(MakeStep(2)).ok());
  EXPECT_EQ(hub_->NumPendingSteps(), 2);
  for (FakeLink* link : workers_) {
    EXPECT_EQ(link->StepIds(), (std::vector<uint64_t>{1, 2})) << link->peer();
    link->Answer(1);
    link->Answer(2);
  }
  for (uint64_t id : {1, 2}) {
    absl::StatusOr<v1::StepResult> result = hub_->AwaitStepResult(id, absl::Seconds(5));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->step_id(), id);
    ASSERT_EQ(result->tokens_size(), 1);  // from rank 2, the last stage's tp-rank 0
    EXPECT_EQ(result->tokens(0), 2 % 97 + 2);
  }
  EXPECT_EQ(hub_->NumPendingSteps(), 0);
}

// Rank 3 answered both steps in flight, then its stream broke. The survivors were Reset: no step
// in flight can finish, and their later collective errors must not get them failed.
TEST_F(WorkerHubTest, WorkerFailingMidStepEndsEveryStepInFlightAndTheGroupReforms) {
  Form();
  ASSERT_TRUE(hub_->SendStep(MakeStep(1)).ok());
  ASSERT_TRUE(hub_->SendStep(MakeStep(2)).ok());
  workers_[0]->Answer(1);
  workers_[3]->Answer(1);
  workers_[3]->Answer(2);
  hub_->OnClosed(workers_[3], "the stream broke");
  EXPECT_TRUE(workers_[3]->closed());
  for (uint64_t id : {1, 2}) {
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::StepResult> result = hub_->AwaitStepResult(id, absl::Seconds(2));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "step " << id << " waited";
  }
  EXPECT_EQ(hub_->NumPendingSteps(), 0);
  for (int r = 0; r < 3; ++r) {
    workers_[r]->Answer(2, "all-reduce: peer gone", /*peer_failed=*/true);  // late, ignored
    EXPECT_FALSE(workers_[r]->closed()) << "survivor rank " << r << " was failed";
    EXPECT_EQ(workers_[r]->Count(v1::CoordinatorMessage::kReset), 1) << r;
  }
  EXPECT_EQ(hub_->NumPendingSteps(), 0);
  GroupState state = hub_->State();
  EXPECT_FALSE(state.ready);
  EXPECT_NE(state.detail.find("missing rank 3"), std::string::npos) << state.detail;
  EXPECT_EQ(hub_->SendStep(MakeStep(3)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Abandoned(), std::vector<std::string>{"formation1/ rank 3 failed: the stream broke"});

  Join(3);  // a replacement: every rank gets the second formation
  for (FakeLink* link : workers_) EXPECT_EQ(link->LastFormation(), 2u) << link->peer();
  LoadAll();
  state = hub_->State();
  ASSERT_TRUE(state.ready) << state.detail;
  EXPECT_EQ(state.epoch, 2u);
  ASSERT_TRUE(hub_->SendStep(MakeStep(4)).ok());
  for (FakeLink* link : workers_) link->Answer(4);
  EXPECT_TRUE(hub_->AwaitStepResult(4, absl::Seconds(5)).ok());
  EXPECT_EQ(hub_->NumPendingSteps(), 0);
}

ValidatedRequest Prompt(int length) {
  ValidatedRequest r;
  for (int i = 0; i < length; ++i) r.prompt.push_back(i + 1);
  r.params.max_tokens = 2;
  return r;
}

// The Engine keeps pp steps in flight; the first fails, and the other must be awaited too, or the
// hub keeps its record for ever.
TEST_F(WorkerHubTest, FailedPipelinedStepLeavesNoStepRecordUnderTheEngine) {
  Form();
  engine_ = std::make_unique<Engine>(
      EngineOptions{.scheduler = {.max_num_batched_tokens = 4, .max_model_len = 256},
                    .step_timeout = absl::Seconds(5), .max_steps_in_flight = kPp},
      hub_.get(), nullptr);
  engine_->Start();
  ASSERT_TRUE(WaitFor([&] { return engine_->Stats().serving; }));
  // A (12 tokens) fills step 1; B arrives while step 1 runs; then A's second chunk fills step 2
  // and B's first chunk makes step 3, both in flight.
  Sink &a = sinks_[0], &b = sinks_[1], &c = sinks_[2];
  uint64_t ticket = 0;
  ASSERT_TRUE(engine_->Submit(Prompt(12), &a, &ticket).ok());
  ASSERT_TRUE(WaitFor([&] { return workers_[0]->StepIds().size() == 1; }));
  ASSERT_TRUE(engine_->Submit(Prompt(5), &b, &ticket).ok());
  for (FakeLink* link : workers_) link->Answer(1);
  ASSERT_TRUE(WaitFor([&] { return workers_[kWorld - 1]->StepIds().size() == 3; }));
  EXPECT_EQ(hub_->NumPendingSteps(), 2);

  hub_->OnClosed(workers_[1], "the stream broke");  // mid-step: nobody answered steps 2 and 3
  ASSERT_TRUE(WaitFor([&] { return a.finals() == 1 && b.finals() == 1; }));
  EXPECT_EQ(a.error().code(), absl::StatusCode::kUnavailable) << a.error();
  EXPECT_EQ(b.error().code(), absl::StatusCode::kUnavailable) << b.error();
  EXPECT_TRUE(WaitFor([&] { return hub_->NumPendingSteps() == 0; }, absl::Seconds(2)))
      << hub_->NumPendingSteps() << " step records left behind";

  for (FakeLink* link : workers_) link->set_auto_answer(true);
  Join(1)->set_auto_answer(true);
  LoadAll();
  ASSERT_TRUE(WaitFor([&] { return engine_->Stats().serving; }));
  ASSERT_TRUE(engine_->Submit(Prompt(5), &c, &ticket).ok());
  ASSERT_TRUE(WaitFor([&] { return c.finals() == 1; }));
  EXPECT_TRUE(c.error().ok()) << c.error();
  EXPECT_EQ(c.tokens(), 2);
  EXPECT_EQ(hub_->NumPendingSteps(), 0);
}

}  // namespace
}  // namespace mla::coordinator
