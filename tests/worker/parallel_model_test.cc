// Tensor and pipeline parallelism of the model over real Gloo TCP communicators, one thread per
// rank in this process: for tp x pp in {2x1, 1x2, 2x2, 4x1}, several concurrent requests give the
// same greedy and seeded tokens as the single-rank model, and logits within a stated tolerance.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gloo/rendezvous/hash_store.h"
#include "gtest/gtest.h"
#include "worker/checkpoint.h"
#include "worker/generator.h"
#include "worker/gloo_communicator.h"
#include "worker/model.h"

namespace mla {
namespace {

// One rank: its communicators, model shard and cache.
struct Rank {
  std::unique_ptr<Communicator> tp, pp_prev, pp_next;
  std::unique_ptr<Model> model;
  std::unique_ptr<LatentCachePool> cache;
};

// Builds the tp x pp group: contiguous layer ranges, communicators through one in-process store.
std::vector<Rank> MakeGroup(const Checkpoint& ck, int tp, int pp, int64_t blocks) {
  const ModelConfig& c = ck.config();
  gloo::rendezvous::HashStore store;
  std::vector<Rank> ranks(tp * pp);
  std::vector<std::thread> threads;
  for (int r = 0; r < tp * pp; ++r) {
    threads.emplace_back([&, r] {
      const int stage = r / tp, tp_rank = r % tp;
      Rank& me = ranks[r];
      const GlooOptions options;
      auto connect = [&](const std::string& prefix, int rank, int size) {
        auto comm = GlooCommunicator::Create(store, prefix, rank, size, options);
        EXPECT_TRUE(comm.ok()) << comm.status();
        return comm.ok() ? std::move(*comm) : nullptr;
      };
      if (tp > 1) me.tp = connect("tp" + std::to_string(stage), tp_rank, tp);
      if (stage > 0) me.pp_prev = connect(absl::StrCat("pp", stage - 1, "_", tp_rank), 1, 2);
      if (stage + 1 < pp) me.pp_next = connect(absl::StrCat("pp", stage, "_", tp_rank), 0, 2);
      const ShardSpec shard{.layer_begin = c.num_hidden_layers * stage / pp,
                            .layer_end = c.num_hidden_layers * (stage + 1) / pp,
                            .tp_rank = tp_rank,
                            .tp_size = tp};
      auto model = Model::Load(ck, shard, {me.tp.get(), me.pp_prev.get(), me.pp_next.get()});
      ASSERT_TRUE(model.ok()) << model.status();
      me.model = std::move(*model);
      auto cache = me.model->NewCache(blocks);
      ASSERT_TRUE(cache.ok()) << cache.status();
      me.cache = std::move(*cache);
    });
  }
  for (auto& t : threads) t.join();
  return ranks;
}

// Runs a step on every rank at once; the last stage's tp-rank 0 has the tokens.
absl::StatusOr<StepOutput> RunOnGroup(std::vector<Rank>& ranks, const StepBatch& batch) {
  std::vector<absl::StatusOr<StepOutput>> outs(ranks.size(), StepOutput{});
  std::vector<std::thread> threads;
  for (size_t r = 0; r < ranks.size(); ++r) {
    threads.emplace_back([&, r] {
      outs[r] = ranks[r].model->Forward(batch, *ranks[r].cache, {.return_logits = true});
    });
  }
  for (auto& t : threads) t.join();
  for (auto& o : outs) {
    if (!o.ok()) return o.status();
  }
  const int tp = ranks[0].tp ? ranks[0].tp->size() : 1;
  return outs[ranks.size() - tp];
}

double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * double(a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

TEST(ParallelModel, ShardedGroupsMatchOneRank) {
  const char* dir = std::getenv("MLA_TINY_CHECKPOINT");
  ASSERT_NE(dir, nullptr) << "MLA_TINY_CHECKPOINT is not set (run through ctest)";
  auto ck = Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  const ModelConfig& c = (*ck)->config();

  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(2, static_cast<int32_t>(c.vocab_size) - 1);
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    GenerateRequest r{.max_tokens = 4 + i, .ignore_eos = true};
    r.sampling = {.temperature = i % 2 ? 0.9f : 0.0f, .top_k = 40, .top_p = 0.95f,
                  .seed = static_cast<uint64_t>(11 + i)};
    for (int t = 0; t < 5 + 23 * i; ++t) r.prompt.push_back(id(rng));
    reqs.push_back(r);
  }
  const GenerateOptions options{.prefill_chunk = 16, .keep_logits = true};
  auto single = Model::Load(**ck, ShardSpec{});
  ASSERT_TRUE(single.ok()) << single.status();
  auto expected = Generate(**single, reqs, options);
  ASSERT_TRUE(expected.ok()) << expected.status();

  // Row-parallel partial sums are float64 and rounded to float once (ops.h), so every layout
  // computes the one-rank floats: logits are expected bit-identical (observed: 0). The bound 1e-6
  // leaves room only for a float64 rounding that lands on a float rounding boundary.
  for (auto [tp, pp] : {std::pair{2, 1}, {1, 2}, {2, 2}, {4, 1}}) {
    std::vector<Rank> ranks = MakeGroup(**ck, tp, pp, GenerationBlocks(reqs));
    ASSERT_FALSE(HasFatalFailure());
    auto got = RunGeneration(c, reqs, options,
                             [&](const StepBatch& b) { return RunOnGroup(ranks, b); });
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ((*got)[i].tokens, (*expected)[i].tokens) << tp << "x" << pp << " request " << i;
      const double err = RelativeError((*got)[i].logits, (*expected)[i].logits);
      std::printf("tp %d x pp %d, request %zu: logits rel. error %.3g\n", tp, pp, i, err);
      EXPECT_LE(err, 1e-6);
    }
  }
}

}  // namespace
}  // namespace mla
