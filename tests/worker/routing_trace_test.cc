// RoutingTrace on the tiny checkpoint (CPU): a run recorded and replayed into a second run
// gives the same tokens and bit-identical logits; a trace with one token's experts changed
// changes the logits of that token's request (the choice is imposed) and of no other;
// a trace too short or of the wrong shape is FAILED_PRECONDITION, never a crash.
#include "worker/routing_trace.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/checkpoint.h"
#include "worker/generator.h"
#include "worker/model.h"

namespace mla {
namespace {

class RoutingTraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
    ASSERT_NE(dir, nullptr) << "MLA_TINY_CHECKPOINT is not set (run through ctest)";
    auto ck = Checkpoint::Open(dir);
    ASSERT_TRUE(ck.ok()) << ck.status();
    checkpoint_ = std::move(*ck);
    auto model = Model::Load(*checkpoint_, ShardSpec{});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    std::mt19937 rng(91);
    const int32_t vocab = static_cast<int32_t>(model_->config().vocab_size);
    std::uniform_int_distribution<int32_t> id(2, vocab - 1);
    for (int64_t len : {1, 9, 40}) {
      GenerateRequest r{.max_tokens = 6, .ignore_eos = true};
      for (int64_t i = 0; i < len; ++i) r.prompt.push_back(id(rng));
      requests_.push_back(r);
    }
  }

  absl::StatusOr<std::vector<GenerateResult>> Run(RoutingTrace* trace) {
    return Generate(*model_, requests_, {.prefill_chunk = 16, .keep_logits = true,
                                         .routing = trace});
  }

  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Model> model_;
  std::vector<GenerateRequest> requests_;
};

TEST_F(RoutingTraceTest, ReplayReproducesTheRunAndImposesAChangedChoice) {
  auto plain = Run(nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  RoutingTrace trace;
  auto recorded = Run(&trace);
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  ASSERT_FALSE(trace.choices.empty());
  const int64_t top_k = model_->config().num_experts_per_tok;
  for (const std::vector<int32_t>& entry : trace.choices) {
    ASSERT_FALSE(entry.empty());
    ASSERT_EQ(entry.size() % top_k, 0u);
  }

  trace.mode = RoutingTrace::Mode::kReplay;
  auto replayed = Run(&trace);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(trace.next, trace.choices.size());  // every entry used
  for (size_t r = 0; r < requests_.size(); ++r) {
    EXPECT_EQ((*recorded)[r].tokens, (*plain)[r].tokens);
    EXPECT_EQ((*recorded)[r].logits, (*plain)[r].logits) << "recording changed request " << r;
    EXPECT_EQ((*replayed)[r].tokens, (*plain)[r].tokens);
    EXPECT_EQ((*replayed)[r].logits, (*plain)[r].logits) << "replay changed request " << r;
  }

  // The first step's first MoE layer: token 0 routed to other experts (the next ids, mod E).
  RoutingTrace changed = trace;
  changed.next = 0;
  const int32_t experts = static_cast<int32_t>(model_->config().n_routed_experts);
  std::vector<int32_t>& first = changed.choices.front();
  std::vector<int32_t> token0(first.begin(), first.begin() + top_k);
  for (int64_t j = 0; j < top_k; ++j) {
    int32_t e = first[j];
    do e = (e + 1) % experts;
    while (std::find(token0.begin(), token0.end(), e) != token0.end());
    first[j] = e;
    token0[j] = e;
  }
  auto forced = Run(&changed);
  ASSERT_TRUE(forced.ok()) << forced.status();
  // Row 0 of the first step belongs to one request: its logits change, and only its own (the
  // requests do not attend to each other).
  int changed_requests = 0;
  for (size_t r = 0; r < requests_.size(); ++r) {
    changed_requests += (*forced)[r].logits != (*plain)[r].logits;
  }
  EXPECT_EQ(changed_requests, 1) << "the changed choice was not imposed, or leaked";
}

TEST_F(RoutingTraceTest, AShortOrMisshapenTraceIsRefused) {
  RoutingTrace trace;
  ASSERT_TRUE(Run(&trace).ok());
  trace.mode = RoutingTrace::Mode::kReplay;
  RoutingTrace short_trace = trace;
  short_trace.choices.resize(trace.choices.size() / 2);
  auto out = Run(&short_trace);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();

  RoutingTrace misshapen = trace;
  misshapen.choices[1].pop_back();
  out = Run(&misshapen);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();

  RoutingTrace bad_expert = trace;
  bad_expert.choices[0][0] = static_cast<int32_t>(model_->config().n_routed_experts);
  out = Run(&bad_expert);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();
}

}  // namespace
}  // namespace mla
