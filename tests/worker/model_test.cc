// The forward pass on the tiny checkpoint: prompt processing is invariant to chunking (one
// prefill, chunks, token by token through the absorbed decode form), batching does not change a
// request's result, and malformed batches are refused. The checkpoint comes from the CTest
// fixture (MLA_TINY_CHECKPOINT).
#include "worker/model.h"

#include <cmath>
#include <cstdlib>
#include <random>

#include "gtest/gtest.h"
#include "worker/checkpoint.h"
#include "worker/generator.h"

namespace mla {
namespace {

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
    ASSERT_NE(dir, nullptr) << "MLA_TINY_CHECKPOINT is not set (run through ctest)";
    auto ck = Checkpoint::Open(dir);
    ASSERT_TRUE(ck.ok()) << ck.status();
    checkpoint_ = std::move(*ck).release();
    auto model = Model::Load(*checkpoint_, ShardSpec{});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete checkpoint_;
  }

  static std::vector<int32_t> RandomPrompt(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> id(2, static_cast<int32_t>(model_->config().vocab_size) - 1);
    std::vector<int32_t> p(n);
    for (auto& t : p) t = id(rng);
    return p;
  }

  static GenerateResult Run(const GenerateRequest& r, int64_t chunk) {
    auto out = Generate(*model_, {r}, {.prefill_chunk = chunk, .keep_logits = true});
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? (*out)[0] : GenerateResult{};
  }

  // ||a - b|| / ||b|| over all logits.
  static double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      num += (a[i] - b[i]) * double(a[i] - b[i]);
      den += double(b[i]) * b[i];
    }
    return std::sqrt(num / den);
  }

  static Checkpoint* checkpoint_;
  static Model* model_;
};
Checkpoint* ModelTest::checkpoint_ = nullptr;
Model* ModelTest::model_ = nullptr;

TEST_F(ModelTest, LogitsAreFiniteAndNotDegenerate) {
  GenerateRequest r{.prompt = RandomPrompt(20, 1), .max_tokens = 4, .ignore_eos = true};
  GenerateResult res = Run(r, 0);
  ASSERT_EQ(res.tokens.size(), 4u);
  double sum = 0, sq = 0;
  for (float v : res.logits) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += double(v) * v;
  }
  const double n = res.logits.size(), stddev = std::sqrt(sq / n - (sum / n) * (sum / n));
  std::printf("logit std %.4f\n", stddev);
  EXPECT_GT(stddev, 1e-2);
}

// Tolerances: chunked prefill runs the same per-row math in the same order, so only float
// reassociation inside the ops can differ (bound 1e-5); the absorbed decode form reassociates the
// W_UK / W_UV products (bound 1e-3 on the logits, tokens must still agree).
TEST_F(ModelTest, ChunkedPrefillEqualsOnePrefill) {
  for (int64_t len : {1, 17, 64, 65, 150}) {
    GenerateRequest r{.prompt = RandomPrompt(len, 100 + len), .max_tokens = 6, .ignore_eos = true};
    GenerateResult whole = Run(r, 0);
    for (int64_t chunk : {7, 64}) {
      GenerateResult parts = Run(r, chunk);
      EXPECT_EQ(parts.tokens, whole.tokens) << "len " << len << " chunk " << chunk;
      EXPECT_LT(RelativeError(parts.logits, whole.logits), 1e-5) << "len " << len;
    }
  }
}

TEST_F(ModelTest, TokenByTokenDecodeFormEqualsPrefillForm) {
  for (int64_t len : {5, 70}) {
    GenerateRequest r{.prompt = RandomPrompt(len, 200 + len), .max_tokens = 6, .ignore_eos = true};
    GenerateResult whole = Run(r, 0);
    GenerateResult single = Run(r, 1);
    EXPECT_EQ(single.tokens, whole.tokens) << "len " << len;
    const double err = RelativeError(single.logits, whole.logits);
    std::printf("len %lld: decode-form vs prefill-form logits rel. error %.3g\n",
                static_cast<long long>(len), err);
    EXPECT_LT(err, 1e-3);
  }
}

TEST_F(ModelTest, BatchingDoesNotChangeResults) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 5; ++i) {
    reqs.push_back({.prompt = RandomPrompt(3 + 29 * i, 300 + i),
                    .max_tokens = 3 + i,
                    .sampling = {.temperature = i % 2 ? 0.8f : 0.0f, .top_k = 50, .top_p = 0.9f,
                                 .seed = static_cast<uint64_t>(i)},
                    .ignore_eos = true});
  }
  auto batched = Generate(*model_, reqs, {.prefill_chunk = 32, .keep_logits = true});
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateResult alone = Run(reqs[i], 32);
    EXPECT_EQ((*batched)[i].tokens, alone.tokens) << "request " << i;
    EXPECT_LT(RelativeError((*batched)[i].logits, alone.logits), 1e-5) << "request " << i;
  }
}

TEST_F(ModelTest, MalformedBatchesAreRefused) {
  auto new_cache = model_->NewCache(4);
  ASSERT_TRUE(new_cache.ok()) << new_cache.status();
  LatentCachePool& cache = **new_cache;
  const int32_t vocab = static_cast<int32_t>(model_->config().vocab_size);
  struct Case {
    SequenceStep step;
    std::string fragment;
  };
  std::vector<Case> cases = {
      {{.seq_id = 7, .tokens = {}, .block_table = {0}}, "no tokens"},
      {{.seq_id = 7, .tokens = {vocab}, .block_table = {0}}, "outside [0, 1024)"},
      {{.seq_id = 7, .tokens = {-1}, .block_table = {0}}, "token id -1"},
      {{.seq_id = 7, .tokens = {1}, .start_pos = 64, .block_table = {0}}, "2 needed"},
      {{.seq_id = 7, .tokens = {1}, .block_table = {9}}, "block id 9"},
  };
  for (const Case& c : cases) {
    StepBatch batch{.seqs = {c.step}};
    auto out = model_->Forward(batch, cache);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.fragment), std::string::npos) << out.status();
    EXPECT_NE(out.status().message().find("sequence 7"), std::string::npos) << out.status();
  }
}

}  // namespace
}  // namespace mla
