// cuda::Sample vs cpu::Sample: the same token for every row, on fresh random logits, seeds and
// steps, tokens poisoned (-1) and the workspace poisoned (NaN) before each launch. Rows cover
// greedy (with tied maxima), plain temperature, top_k only, top_p only, both, top_k = 1,
// top_k > vocab, tiny and near-1 top_p; logits with many exact ties (quantised, all equal), with
// -inf (a third of them, or all but five), with p underflowing to 0 for most ids (a wide spread
// at low temperature), peaked like a language model's (the top-p candidates are few), and with
// DIFFERENT logits of EQUAL p (tiny distinct logits where exp(z - m) or z - m rounds to one
// value): there the CPU orders by id while the GPU sorts by logit, and the test also counts the
// rows where a sampler in logit order would have drawn another token (it must see some).
// Batches mix greedy and sampled rows, or are all greedy. Vocabularies: V3's 129,280, 1000, 1001
// (rows not 16-byte aligned), 37 (fewer ids than threads) and 1. The GPU's double sums differ
// from the CPU's in rounding only (~1e-16), so a differing token would take a draw within that
// distance of a CDF step: none is expected. Two identical runs give the same tokens, and a
// launch captured in a CUDA graph replays with new logits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/sample/sample.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr int32_t kV3Vocab = 129280;

enum class Logits {
  kNormal,         // N(0, 3)
  kQuantised,      // N(0, 3) rounded: many exact ties
  kConstant,       // all 1.5
  kTiedMax,        // the maximum at three ids; the lowest must win greedy
  kWithNegInf,     // every third id -inf
  kMostlyNegInf,   // all -inf but five ids
  kWideSpread,     // N(0, 60): at T <= 1 most p underflow to exactly 0
  kPeaked,         // N(0, 2) with ten ids raised by 8-15, like a language model's head
  kEqualPByExp,    // 300 shuffled ids at k * 1e-30 (exp(z - m) == 1), the rest N(-40, 1)
  kEqualPByRound,  // one id at 10, 20000 at k * 1e-25, +0, -0 (z - m == -10), rest N(-50, 1)
};

struct RowSpec {
  SamplingParams params;  // seed is drawn per round
  Logits logits;
};

std::vector<int64_t> DistinctIds(int64_t count, int64_t vocab, std::mt19937& rng) {
  std::vector<int64_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(std::min(count, vocab));
  return ids;
}

std::vector<float> MakeLogits(Logits kind, int64_t vocab, std::mt19937& rng) {
  std::vector<float> row = testing::RandomNormals(rng, vocab, 3.0f);
  switch (kind) {
    case Logits::kNormal:
      break;
    case Logits::kQuantised:
      for (float& x : row) x = std::round(x);
      break;
    case Logits::kConstant:
      std::fill(row.begin(), row.end(), 1.5f);
      break;
    case Logits::kTiedMax: {
      const float top = *std::max_element(row.begin(), row.end()) + 1.0f;
      for (int64_t id : {vocab - 1, vocab / 2, vocab / 3}) row[id] = top;
      break;
    }
    case Logits::kWithNegInf:
      for (int64_t i = 1; i < vocab; i += 3) row[i] = -INFINITY;
      break;
    case Logits::kMostlyNegInf: {
      std::vector<float> finite = testing::RandomNormals(rng, 5, 2.0f);
      std::fill(row.begin(), row.end(), -INFINITY);
      const std::vector<int64_t> ids = DistinctIds(5, vocab, rng);
      for (size_t k = 0; k < ids.size(); ++k) row[ids[k]] = finite[k];
      break;
    }
    case Logits::kWideSpread:
      for (float& x : row) x *= 20.0f;
      break;
    case Logits::kPeaked: {
      std::uniform_real_distribution<float> raise(8.0f, 15.0f);
      for (float& x : row) x *= 2.0f / 3.0f;
      for (int64_t id : DistinctIds(10, vocab, rng)) row[id] += raise(rng);
      break;
    }
    case Logits::kEqualPByExp: {
      for (float& x : row) x = x / 3.0f - 40.0f;
      const std::vector<int64_t> ids = DistinctIds(300, vocab, rng);
      for (size_t k = 0; k < ids.size(); ++k) row[ids[k]] = static_cast<float>(k + 1) * 1e-30f;
      break;
    }
    case Logits::kEqualPByRound: {
      for (float& x : row) x = x / 3.0f - 50.0f;
      const std::vector<int64_t> ids = DistinctIds(20003, vocab, rng);
      row[ids[0]] = 10.0f;
      for (size_t k = 1; k < ids.size(); ++k) row[ids[k]] = static_cast<float>(k) * 1e-25f;
      if (ids.size() > 2) {
        row[ids[1]] = 0.0f;
        row[ids[2]] = -0.0f;
      }
      break;
    }
  }
  return row;
}

// Steps 2-6 of cpu::Sample, but candidates ordered by logit (descending, ascending id): what a
// GPU sampler that sorted logits without the tie check would draw.
int32_t LogitOrderSample(const std::vector<float>& row, const SamplingParams& params,
                         uint64_t step) {
  const int64_t vocab = static_cast<int64_t>(row.size());
  const double t = static_cast<double>(params.temperature);
  std::vector<double> p(vocab);
  double m = static_cast<double>(row[0]) / t;
  for (int64_t i = 0; i < vocab; ++i) m = std::max(m, static_cast<double>(row[i]) / t);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    p[i] = std::exp(static_cast<double>(row[i]) / t - m);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&row](int32_t a, int32_t b) { return row[a] > row[b]; });
  const int64_t kept_k = params.top_k > 0 ? std::min<int64_t>(params.top_k, vocab) : vocab;
  double mass_k = 0.0;
  for (int64_t j = 0; j < kept_k; ++j) mass_k += p[order[j]];
  int64_t kept = kept_k;
  double cumulative = 0.0;
  for (int64_t j = 0; j < kept_k; ++j) {
    cumulative += p[order[j]];
    if (cumulative >= static_cast<double>(params.top_p) * mass_k) {
      kept = j + 1;
      break;
    }
  }
  double total = 0.0;
  for (int64_t j = 0; j < kept; ++j) total += p[order[j]];
  const double target = cpu::SampleUniform(params.seed, step) * total;
  cumulative = 0.0;
  for (int64_t j = 0; j < kept; ++j) {
    cumulative += p[order[j]];
    if (cumulative > target) return order[j];
  }
  return order[kept - 1];
}

struct Totals {
  int64_t mismatches = 0;            // GPU token != CPU token
  int64_t logit_order_differs = 0;  // rows where LogitOrderSample != CPU token
};

// Runs `rounds` rounds of the batch `specs` (fresh logits, seeds and steps each round), twice
// each, and compares every token with cpu::Sample.
Totals CheckRows(const std::string& what, int64_t vocab, const std::vector<RowSpec>& specs,
                 int rounds, std::mt19937& rng) {
  Totals totals;
  const int64_t batch = static_cast<int64_t>(specs.size());
  const absl::StatusOr<SamplePlan> plan = PlanSample(batch, vocab);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return totals;
  auto workspace = DeviceBuffer<unsigned char>::Allocate(plan->workspace_bytes);
  auto d_tokens = DeviceBuffer<int32_t>::Allocate(batch);
  EXPECT_TRUE(workspace.ok() && d_tokens.ok());
  if (!workspace.ok() || !d_tokens.ok()) return totals;
  std::uniform_int_distribution<uint64_t> any64;
  for (int round = 0; round < rounds; ++round) {
    std::vector<float> logits;
    std::vector<SamplingParams> params;
    std::vector<uint64_t> steps;
    std::vector<int32_t> ref;
    for (const RowSpec& spec : specs) {
      const std::vector<float> row = MakeLogits(spec.logits, vocab, rng);
      SamplingParams p = spec.params;
      p.seed = any64(rng);
      const uint64_t step = round == 0 ? static_cast<uint64_t>(params.size()) : any64(rng);
      ref.push_back(cpu::Sample(row.data(), vocab, p, step));
      if (p.temperature > 0.0f && LogitOrderSample(row, p, step) != ref.back()) {
        ++totals.logit_order_differs;
      }
      logits.insert(logits.end(), row.begin(), row.end());
      params.push_back(p);
      steps.push_back(step);
    }
    auto d_logits = DeviceBuffer<float>::FromHost(logits);
    auto d_params = DeviceBuffer<SamplingParams>::FromHost(params);
    auto d_steps = DeviceBuffer<uint64_t>::FromHost(steps);
    EXPECT_TRUE(d_logits.ok() && d_params.ok() && d_steps.ok());
    if (!d_logits.ok() || !d_params.ok() || !d_steps.ok()) return totals;
    EXPECT_TRUE(workspace->Fill(0xff).ok());  // stale workspace: NaN keys, -1 ids and offsets
    std::vector<int32_t> first;
    for (int run = 0; run < 2; ++run) {
      EXPECT_TRUE(d_tokens->Fill(0xff).ok());
      const absl::Status launched = Sample(d_logits->get(), d_params->get(), d_steps->get(), *plan,
                                           workspace->get(), d_tokens->get(), nullptr);
      EXPECT_TRUE(launched.ok()) << launched;
      absl::StatusOr<std::vector<int32_t>> got = d_tokens->ToHost();
      EXPECT_TRUE(got.ok()) << got.status();
      if (!launched.ok() || !got.ok()) return totals;
      if (run == 1) {
        EXPECT_EQ(*got, first) << what << ": two identical runs differ";
        continue;
      }
      first = *got;
      for (int64_t b = 0; b < batch; ++b) {
        const SamplingParams& p = params[b];
        if ((*got)[b] != ref[b]) ++totals.mismatches;
        EXPECT_EQ((*got)[b], ref[b]) << what << " round " << round << " row " << b
                                     << ": T=" << p.temperature << " top_k=" << p.top_k
                                     << " top_p=" << p.top_p << " seed=" << p.seed
                                     << " step=" << steps[b];
      }
    }
  }
  std::printf("%s: vocab %lld, %lld rows x %d rounds, %lld tokens differ from the CPU; a "
              "logit-order sampler would differ in %lld\n",
              what.c_str(), static_cast<long long>(vocab), static_cast<long long>(batch), rounds,
              static_cast<long long>(totals.mismatches),
              static_cast<long long>(totals.logit_order_differs));
  return totals;
}

std::vector<RowSpec> AllKinds(int32_t vocab) {
  return {
      {{.temperature = 0.0f}, Logits::kNormal},
      {{.temperature = 0.0f}, Logits::kTiedMax},
      {{.temperature = 0.0f}, Logits::kConstant},
      {{.temperature = 1.0f}, Logits::kNormal},
      {{.temperature = 0.7f, .top_k = 50}, Logits::kNormal},
      {{.temperature = 1.3f, .top_p = 0.9f}, Logits::kNormal},
      {{.temperature = 0.8f, .top_k = 40, .top_p = 0.5f}, Logits::kNormal},
      {{.temperature = 1.0f, .top_k = 1}, Logits::kNormal},
      {{.temperature = 2.0f, .top_p = 0.05f}, Logits::kNormal},
      {{.temperature = 1.0f, .top_k = vocab + 5}, Logits::kNormal},
      {{.temperature = 0.5f, .top_p = 1e-6f}, Logits::kNormal},
      {{.temperature = 5.0f, .top_p = 0.999f}, Logits::kQuantised},
      {{.temperature = 1.0f, .top_k = 3}, Logits::kConstant},
      {{.temperature = 0.9f, .top_k = 1000, .top_p = 0.95f}, Logits::kQuantised},
      {{.temperature = 3.0f}, Logits::kQuantised},
      {{.temperature = 1.0f, .top_p = 0.95f}, Logits::kPeaked},
      {{.temperature = 0.6f, .top_k = 20, .top_p = 0.9f}, Logits::kWithNegInf},
      {{.temperature = 0.3f, .top_p = 0.99f}, Logits::kWideSpread},
      {{.temperature = 1.0f, .top_p = 0.7f}, Logits::kEqualPByExp},
  };
}

TEST(GpuSample, V3VocabularyMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckRows("V3 vocabulary", kV3Vocab, AllKinds(kV3Vocab), 3, rng);
}

TEST(GpuSample, SmallVocabulariesMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckRows("vocab 1000", 1000, AllKinds(1000), 4, rng);
  CheckRows("vocab 1001", 1001, AllKinds(1001), 4, rng);
  CheckRows("vocab 37", 37, AllKinds(37), 4, rng);
  CheckRows("vocab 1", 1, {{{.temperature = 0.0f}, Logits::kNormal},
                           {{.temperature = 1.0f, .top_p = 0.5f}, Logits::kNormal},
                           {{.temperature = 1.0f, .top_k = 1}, Logits::kNormal}},
            2, rng);
}

// Greedy and sampled rows interleaved: greedy rows sort nothing, and must not disturb their
// neighbours' segments.
TEST(GpuSample, MixedGreedyAndSampledBatchMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Logits kinds[] = {Logits::kNormal, Logits::kPeaked, Logits::kQuantised,
                          Logits::kWithNegInf, Logits::kWideSpread, Logits::kTiedMax};
  const SamplingParams sampled[] = {{.temperature = 1.0f},
                                    {.temperature = 0.8f, .top_k = 50},
                                    {.temperature = 1.0f, .top_p = 0.9f},
                                    {.temperature = 0.7f, .top_k = 100, .top_p = 0.8f}};
  std::vector<RowSpec> specs;
  for (int r = 0; r < 24; ++r) {
    const Logits kind = kinds[r % 6];
    specs.push_back(r % 2 == 0 ? RowSpec{{.temperature = 0.0f}, kind}
                               : RowSpec{sampled[(r / 2) % 4], kind});
  }
  CheckRows("mixed greedy and sampled", kV3Vocab, specs, 2, rng);
}

// A decode batch of 64 greedy rows: only the argmax pass does work.
TEST(GpuSample, AllGreedyBatchMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Logits kinds[] = {Logits::kNormal,       Logits::kTiedMax,    Logits::kConstant,
                          Logits::kQuantised,    Logits::kWithNegInf, Logits::kMostlyNegInf,
                          Logits::kWideSpread,   Logits::kPeaked,     Logits::kEqualPByExp,
                          Logits::kEqualPByRound};
  std::vector<RowSpec> specs;
  for (int r = 0; r < 64; ++r) specs.push_back({{.temperature = 0.0f}, kinds[r % 10]});
  CheckRows("all greedy", kV3Vocab, specs, 2, rng);
  CheckRows("all greedy, vocab 1001", 1001, specs, 2, rng);
}

// top_k only, top_p only and both, from the smallest cuts to nearly the whole vocabulary, on
// logits whose candidate sets are small (peaked), large (normal at T = 2) or full of ties.
TEST(GpuSample, TopKAndTopPCutsMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::vector<RowSpec> specs;
  for (Logits kind : {Logits::kPeaked, Logits::kNormal, Logits::kQuantised}) {
    const float t = kind == Logits::kNormal ? 2.0f : 1.0f;
    for (int32_t k : {1, 2, 50, 1000, 100000, kV3Vocab - 1}) {
      specs.push_back({{.temperature = t, .top_k = k}, kind});
    }
    for (float p : {0.1f, 0.5f, 0.9f, 0.99f, 0.999999f}) {
      specs.push_back({{.temperature = t, .top_p = p}, kind});
    }
    specs.push_back({{.temperature = t, .top_k = 50, .top_p = 0.9f}, kind});
    specs.push_back({{.temperature = t, .top_k = 5000, .top_p = 0.3f}, kind});
  }
  CheckRows("top-k / top-p cuts", kV3Vocab, specs, 2, rng);
}

TEST(GpuSample, TiesAndInfinitiesMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::vector<RowSpec> specs;
  for (Logits kind : {Logits::kQuantised, Logits::kConstant, Logits::kTiedMax,
                      Logits::kWithNegInf, Logits::kMostlyNegInf}) {
    specs.push_back({{.temperature = 0.0f}, kind});
    specs.push_back({{.temperature = 1.0f}, kind});
    specs.push_back({{.temperature = 1.0f, .top_k = 7}, kind});
    specs.push_back({{.temperature = 0.5f, .top_p = 0.6f}, kind});
    specs.push_back({{.temperature = 2.0f, .top_k = 300, .top_p = 0.95f}, kind});
  }
  CheckRows("ties and -inf", kV3Vocab, specs, 2, rng);
}

// Most p are exactly 0 (z - m < -745): their order is the CPU's by id but ours by logit, which
// cannot change the token (sample.cu). Cuts that end inside the zeros included.
TEST(GpuSample, UnderflowingProbabilitiesMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::vector<RowSpec> specs;
  for (float t : {0.05f, 0.3f, 1.0f}) {
    specs.push_back({{.temperature = t}, Logits::kWideSpread});
    specs.push_back({{.temperature = t, .top_k = kV3Vocab - 5}, Logits::kWideSpread});
    specs.push_back({{.temperature = t, .top_k = 50}, Logits::kWideSpread});
    specs.push_back({{.temperature = t, .top_p = 0.999999f}, Logits::kWideSpread});
    specs.push_back({{.temperature = t, .top_p = 0.5f}, Logits::kWideSpread});
    specs.push_back({{.temperature = t, .top_k = 2000, .top_p = 0.99f}, Logits::kMostlyNegInf});
  }
  CheckRows("underflowing p", kV3Vocab, specs, 2, rng);
}

// Different logits with equal p, where the picks land: the GPU must order them by id like the
// CPU, inside the cut and when a top-k cut ends inside them. (top_p avoids 0.5: with 300 equal p,
// P_149 = 0.5 * P_299 up to rounding, a draw on a CDF step that the sums' order decides.)
TEST(GpuSample, EqualProbabilitiesOfDifferentLogitsMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::vector<RowSpec> specs;
  for (Logits kind : {Logits::kEqualPByExp, Logits::kEqualPByRound}) {
    specs.push_back({{.temperature = 1.0f}, kind});
    specs.push_back({{.temperature = 1.0f, .top_k = 100}, kind});
    specs.push_back({{.temperature = 1.0f, .top_p = 0.45f}, kind});
    specs.push_back({{.temperature = 1.0f, .top_p = 0.9f}, kind});
    specs.push_back({{.temperature = 1.0f, .top_k = 20, .top_p = 0.8f}, kind});
  }
  const Totals totals = CheckRows("equal p of different logits", kV3Vocab, specs, 4, rng);
  EXPECT_GT(totals.logit_order_differs, 0) << "no pick landed where the order matters";
}

// Sample captured once in a CUDA graph (so it neither allocates nor synchronises) and replayed
// on new logits, params and steps copied into the same buffers.
TEST(GpuSample, ReplaysInCudaGraph) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const std::vector<RowSpec> specs = AllKinds(kV3Vocab);
  const int64_t batch = static_cast<int64_t>(specs.size());
  MLA_ASSERT_OK_AND_ASSIGN(const SamplePlan plan, PlanSample(batch, kV3Vocab));
  MLA_ASSERT_OK_AND_ASSIGN(auto workspace,
                           DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_logits, DeviceBuffer<float>::Allocate(batch * kV3Vocab));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_params, DeviceBuffer<SamplingParams>::Allocate(batch));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_steps, DeviceBuffer<uint64_t>::Allocate(batch));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_tokens, DeviceBuffer<int32_t>::Allocate(batch));
  cudaStream_t stream = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamCreate(&stream), "stream"));  // orders with the copies
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture"));
  const absl::Status launched = Sample(d_logits.get(), d_params.get(), d_steps.get(), plan,
                                       workspace.get(), d_tokens.get(), stream);
  MLA_ASSERT_OK(CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture"));
  MLA_ASSERT_OK(launched);
  MLA_ASSERT_OK(CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "instantiate"));
  std::uniform_int_distribution<uint64_t> any64;
  for (int replay = 0; replay < 3; ++replay) {
    std::vector<float> logits;
    std::vector<SamplingParams> params;
    std::vector<uint64_t> steps;
    std::vector<int32_t> ref;
    for (const RowSpec& spec : specs) {
      const std::vector<float> row = MakeLogits(spec.logits, kV3Vocab, rng);
      SamplingParams p = spec.params;
      p.seed = any64(rng);
      steps.push_back(any64(rng));
      ref.push_back(cpu::Sample(row.data(), kV3Vocab, p, steps.back()));
      logits.insert(logits.end(), row.begin(), row.end());
      params.push_back(p);
    }
    MLA_ASSERT_OK(d_logits.CopyFromHost(logits));
    MLA_ASSERT_OK(d_params.CopyFromHost(params));
    MLA_ASSERT_OK(d_steps.CopyFromHost(steps));
    MLA_ASSERT_OK(workspace.Fill(0xff));
    MLA_ASSERT_OK(d_tokens.Fill(0xff));
    MLA_ASSERT_OK(CudaStatus(cudaGraphLaunch(exec, stream), "graph launch"));
    MLA_ASSERT_OK(CudaStatus(cudaStreamSynchronize(stream), "sync"));
    MLA_ASSERT_OK_AND_ASSIGN(std::vector<int32_t> got, d_tokens.ToHost());
    EXPECT_EQ(got, ref) << "replay " << replay;
  }
  std::printf("CUDA graph: %lld rows x 3 replays\n", static_cast<long long>(batch));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(GpuSample, RejectsBadPlan) {
  const absl::StatusOr<SamplePlan> plan = PlanSample(2, 0);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(plan.status().message(),
            "PlanSample: need batch >= 0, vocab >= 1 and batch * vocab < 2^31, got batch 2 and "
            "vocab 0");
}

}  // namespace
}  // namespace mla::kernels::cuda
