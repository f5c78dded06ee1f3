#include "coordinator/sequence.h"

#include <vector>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

GenerationParams Params(int64_t max_tokens, std::vector<int32_t> stops = {},
                        bool ignore_eos = false) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.stop_token_ids = std::move(stops);
  p.ignore_eos = ignore_eos;
  return p;
}

TEST(Sequence, TokensSpanPromptThenOutput) {
  Sequence seq(1, 0, {10, 11, 12}, Params(5));
  EXPECT_EQ(seq.status(), SequenceStatus::kWaiting);
  EXPECT_EQ(seq.num_uncomputed_tokens(), 3);
  EXPECT_EQ(seq.AppendToken(20, /*eos_token_id=*/-1), FinishReason::kNone);
  EXPECT_EQ(seq.AppendToken(21, -1), FinishReason::kNone);
  EXPECT_EQ(seq.num_tokens(), 5);
  EXPECT_EQ(seq.Tokens(0, 5), (std::vector<int32_t>{10, 11, 12, 20, 21}));
  EXPECT_EQ(seq.Tokens(2, 4), (std::vector<int32_t>{12, 20}));
  EXPECT_TRUE(seq.Tokens(3, 3).empty());
}

TEST(Sequence, ComputedCountAdvancesAndResets) {
  Sequence seq(1, 0, std::vector<int32_t>(100, 1), Params(5));
  seq.AdvanceComputed(64);
  EXPECT_EQ(seq.num_computed_tokens(), 64);
  EXPECT_EQ(seq.num_uncomputed_tokens(), 36);
  seq.ResetComputed();
  EXPECT_EQ(seq.num_computed_tokens(), 0);
}

TEST(Sequence, StopsAtEosUnlessIgnored) {
  Sequence stops(1, 0, {1}, Params(10));
  EXPECT_EQ(stops.AppendToken(5, /*eos_token_id=*/2), FinishReason::kNone);
  EXPECT_EQ(stops.AppendToken(2, 2), FinishReason::kStopEos);
  Sequence ignores(2, 1, {1}, Params(10, {}, /*ignore_eos=*/true));
  EXPECT_EQ(ignores.AppendToken(2, 2), FinishReason::kNone);
  Sequence no_eos(3, 2, {1}, Params(10));
  EXPECT_EQ(no_eos.AppendToken(2, /*eos_token_id=*/-1), FinishReason::kNone);
}

TEST(Sequence, StopsAtStopTokenAndAtMaxTokens) {
  Sequence seq(1, 0, {1}, Params(3, {9, 8}));
  EXPECT_EQ(seq.AppendToken(8, -1), FinishReason::kStopToken);
  Sequence len(2, 1, {1}, Params(2));
  EXPECT_EQ(len.AppendToken(4, -1), FinishReason::kNone);
  EXPECT_EQ(len.AppendToken(4, -1), FinishReason::kLength);
}

TEST(Sequence, FinishRecordsReasonAndUsage) {
  Sequence seq(7, 0, {1, 2, 3}, Params(4));
  seq.AppendToken(5, -1);
  seq.Finish(FinishReason::kCancelled);
  EXPECT_EQ(seq.status(), SequenceStatus::kFinished);
  const SequenceUpdate u = seq.MakeUpdate();
  EXPECT_EQ(u.seq_id, 7);
  EXPECT_EQ(u.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(u.num_prompt_tokens, 3);
  EXPECT_EQ(u.num_output_tokens, 1);
  EXPECT_STREQ(FinishReasonName(FinishReason::kStopEos), "stop_eos");
}

}  // namespace
}  // namespace mla::coordinator
