// cuda::Sample vs cpu::Sample: the same token for every row, on fresh random logits, seeds and
// steps, tokens poisoned (-1) before each launch. Rows cover greedy (with tied maxima), plain
// temperature, top_k, top_p, both, top_k = 1, top_k > vocab, a tiny top_p, and logits with many
// exact ties (quantised, or all equal: equal probabilities must come out in ascending id, the
// CPU's order). Vocabularies: V3's 129,280, 1000 and 1. The GPU's double sums differ from the
// CPU's in rounding only (~1e-16), so a differing token would take a draw within that distance of
// a CDF step: none is expected. Two identical runs give the same tokens.
#include <algorithm>
#include <cmath>
#include <cstdint>
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

enum class Logits { kNormal, kQuantised, kConstant, kTiedMax };

struct RowSpec {
  SamplingParams params;  // seed is drawn per round
  Logits logits;
};

std::vector<float> MakeLogits(Logits kind, int64_t vocab, std::mt19937& rng) {
  std::vector<float> row = testing::RandomNormals(rng, vocab, 3.0f);
  switch (kind) {
    case Logits::kNormal:
      break;
    case Logits::kQuantised:  // many exact ties
      for (float& x : row) x = std::round(x);
      break;
    case Logits::kConstant:
      std::fill(row.begin(), row.end(), 1.5f);
      break;
    case Logits::kTiedMax: {  // the maximum at three ids; the lowest must win greedy
      const float top = *std::max_element(row.begin(), row.end()) + 1.0f;
      for (int64_t id : {vocab - 1, vocab / 2, vocab / 3}) row[id] = top;
      break;
    }
  }
  return row;
}

void CheckRows(const std::string& what, int64_t vocab, const std::vector<RowSpec>& specs,
               int rounds, std::mt19937& rng) {
  const int64_t batch = static_cast<int64_t>(specs.size());
  MLA_ASSERT_OK_AND_ASSIGN(const SamplePlan plan, PlanSample(batch, vocab));
  MLA_ASSERT_OK_AND_ASSIGN(auto workspace,
                           DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_tokens, DeviceBuffer<int32_t>::Allocate(batch));
  std::uniform_int_distribution<uint64_t> any64;
  int64_t mismatches = 0;
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
      logits.insert(logits.end(), row.begin(), row.end());
      params.push_back(p);
      steps.push_back(step);
    }
    MLA_ASSERT_OK_AND_ASSIGN(auto d_logits, DeviceBuffer<float>::FromHost(logits));
    MLA_ASSERT_OK_AND_ASSIGN(auto d_params, DeviceBuffer<SamplingParams>::FromHost(params));
    MLA_ASSERT_OK_AND_ASSIGN(auto d_steps, DeviceBuffer<uint64_t>::FromHost(steps));
    MLA_ASSERT_OK(workspace.Fill(0xff));  // stale workspace: NaN
    std::vector<int32_t> first;
    for (int run = 0; run < 2; ++run) {
      MLA_ASSERT_OK(d_tokens.Fill(0xff));
      MLA_ASSERT_OK(Sample(d_logits.get(), d_params.get(), d_steps.get(), plan, workspace.get(),
                           d_tokens.get(), nullptr));
      MLA_ASSERT_OK_AND_ASSIGN(std::vector<int32_t> got, d_tokens.ToHost());
      if (run == 1) {
        EXPECT_EQ(got, first) << what << ": two identical runs differ";
        continue;
      }
      first = got;
      for (int64_t b = 0; b < batch; ++b) {
        const SamplingParams& p = params[b];
        if (got[b] != ref[b]) ++mismatches;
        EXPECT_EQ(got[b], ref[b]) << what << " round " << round << " row " << b
                                  << ": T=" << p.temperature << " top_k=" << p.top_k
                                  << " top_p=" << p.top_p << " seed=" << p.seed
                                  << " step=" << steps[b];
      }
    }
  }
  std::printf("%s: vocab %lld, %lld rows x %d rounds, %lld tokens differ from the CPU\n",
              what.c_str(), static_cast<long long>(vocab), static_cast<long long>(batch), rounds,
              static_cast<long long>(mismatches));
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
  };
}

TEST(GpuSample, V3VocabularyMatchesCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  constexpr int32_t kVocab = 129280;
  CheckRows("V3 vocabulary", kVocab, AllKinds(kVocab), 3, rng);
}

TEST(GpuSample, SmallVocabulariesMatchCpu) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckRows("vocab 1000", 1000, AllKinds(1000), 4, rng);
  CheckRows("vocab 1", 1, {{{.temperature = 0.0f}, Logits::kNormal},
                           {{.temperature = 1.0f, .top_p = 0.5f}, Logits::kNormal}},
            2, rng);
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
