// cuda::MlaPrefillAttention (gather + cuBLASLt up-projection to bf16 + flash attention on the
// tensor cores) vs cpu::MlaPrefillAttention over a poisoned paged latent cache (STYLE.md F5):
// unused slots and spare blocks hold NaN, block tables are shuffled, entries past a sequence's
// blocks point far out of range, the workspace is stale NaN and the output is NaN before the
// launch. Ragged batches with contexts 1, 63, 64, 65, 300, 1000: whole prompts (q_len = context)
// and chunks after a cached prefix (q_len 1 and > 1, multiples of the 64-row tile and not),
// plus a sequence with no query rows; 2 to 128 heads.
// Tolerance, and why (the project's bf16-operand rule, relative L2 <= 1e-2): the GPU rounds to
// bf16 what the CPU keeps in fp32 — q, the up-projected K^N and V, and the softmax weights P
// before P V — and accumulates in fp32. One rounding is a relative error of at most 2^-8 (bf16
// keeps 8 significant bits), ~1.7e-3 rms. Through a score (192 products of rounded q and k^N;
// scores have a spread of ~2 here) it moves each weight by ~4.5e-3, so with the rounding of V and
// P an output row is off by ~5e-3 of its own size, whatever its context (a row attending to 2
// keys has |out| ~ |v|, one attending to 300 keys ~|v| / 17).
// Bounds: relative L2 <= 1e-2 over the whole output and <= 2e-2 for every (token, head) row (a
// row that misses or gains one key of its ~300 moves by ~6%, so masking errors still fail);
// per element |got - ref| <= 5e-2 rms(row) + 1e-2 |ref| (about 10 standard deviations of the
// element error, so a few million elements stay inside). Two identical runs agree bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr int32_t kHugeBlock = 1 << 30;  // block-table entries that must never be read

MlaDims V3Dims(int64_t heads) {
  return {.heads = heads, .d_latent = 512, .d_rope = 64, .d_nope = 128, .d_v = 128};
}

struct Problem {
  MlaDims dims;
  std::vector<int32_t> q_start = {0}, context_lens, block_tables;
  int64_t max_blocks = 0, num_blocks = 0, context_tokens = 0;
  std::vector<bf16> cache, wkv_b;
  std::vector<float> q;
  float scale = 0.0f;
  int64_t tokens() const { return q_start.back(); }
};

Problem MakeProblem(const MlaDims& dims, const std::vector<int32_t>& contexts,
                    const std::vector<int32_t>& q_lens, std::mt19937& rng) {
  Problem p;
  p.dims = dims;
  p.context_lens = contexts;
  int64_t used_blocks = 0;
  for (size_t s = 0; s < contexts.size(); ++s) {
    p.q_start.push_back(p.q_start.back() + q_lens[s]);
    const int64_t blocks = (contexts[s] + kBlockSize - 1) / kBlockSize;
    p.max_blocks = std::max(p.max_blocks, blocks + 1);
    used_blocks += blocks;
    p.context_tokens += contexts[s];
  }
  p.num_blocks = used_blocks + 3;  // spare blocks stay NaN
  std::vector<int32_t> physical(p.num_blocks);
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), rng);
  const int64_t d_cache = dims.d_cache();
  p.cache.assign(p.num_blocks * kBlockSize * d_cache, bf16{0x7fc0});  // NaN
  p.block_tables.assign(contexts.size() * p.max_blocks, kHugeBlock);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int64_t next = 0;
  for (size_t s = 0; s < contexts.size(); ++s) {
    for (int64_t b = 0; b * kBlockSize < contexts[s]; ++b) {
      p.block_tables[s * p.max_blocks + b] = physical[next++];
    }
    for (int64_t j = 0; j < contexts[s]; ++j) {
      const int64_t slot =
          static_cast<int64_t>(p.block_tables[s * p.max_blocks + j / kBlockSize]) * kBlockSize +
          j % kBlockSize;
      for (int64_t c = 0; c < d_cache; ++c) p.cache[slot * d_cache + c] = FloatToBf16(normal(rng));
    }
  }
  p.wkv_b = testing::ToBf16(
      testing::RandomNormals(rng, dims.heads * (dims.d_nope + dims.d_v) * dims.d_latent, 0.05f));
  p.q = testing::RandomNormals(rng, p.tokens() * dims.heads * dims.d_qk(), 1.0f);
  const RopeConfig v3{.rope_dim = 64, .factor = 40.0, .mscale = 1.0, .mscale_all_dim = 1.0};
  p.scale = cpu::SoftmaxScale(v3, dims.d_qk());
  return p;
}

MlaPrefillParams ParamsOf(const Problem& p, const int32_t* q_start, const int32_t* context_lens,
                          const int32_t* block_tables, bf16* cache, const bf16* wkv_b,
                          const float* q, float* out) {
  MlaPrefillParams params;
  params.dims = p.dims;
  params.batch = {.num_seqs = static_cast<int64_t>(p.context_lens.size()),
                  .q_start = q_start,
                  .context_lens = context_lens,
                  .block_tables = block_tables,
                  .max_blocks_per_seq = p.max_blocks};
  params.cache = {.data = cache, .num_blocks = p.num_blocks, .d_latent = p.dims.d_latent,
                  .d_rope = p.dims.d_rope};
  params.wkv_b = wkv_b;
  params.q = q;
  params.softmax_scale = p.scale;
  params.out = out;
  return params;
}

std::vector<float> RunCpu(const Problem& p) {
  std::vector<float> out(p.tokens() * p.dims.heads * p.dims.d_v, 0.0f);
  cpu::MlaPrefillAttention(ParamsOf(p, p.q_start.data(), p.context_lens.data(),
                                    p.block_tables.data(), const_cast<bf16*>(p.cache.data()),
                                    p.wkv_b.data(), p.q.data(), out.data()));
  return out;
}

constexpr double kRelL2 = 1e-2;        // whole output
constexpr double kRowRelL2 = 2e-2;     // every (token, head) row
constexpr double kRowAtol = 5e-2;      // per element, of rms(row)
constexpr double kRtol = 1e-2;         // per element, of |ref|

// The per-row bounds above (STYLE.md L4: prints the worst row and element, and NaN counts).
void ExpectRowsClose(const std::string& what, const std::vector<float>& got,
                     const std::vector<float>& ref, int64_t d_v) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double worst_row_rel = 0.0, worst_share = 0.0;
  int64_t worst_row = -1, worst_element = -1;
  for (int64_t row = 0; row * d_v < static_cast<int64_t>(ref.size()); ++row) {
    double diff2 = 0.0, ref2 = 0.0;
    for (int64_t e = row * d_v; e < (row + 1) * d_v; ++e) {
      const double diff = static_cast<double>(got[e]) - ref[e];
      diff2 += diff * diff;
      ref2 += static_cast<double>(ref[e]) * ref[e];
    }
    const double rel = std::isnan(diff2) ? INFINITY : std::sqrt(diff2 / ref2);
    if (rel > worst_row_rel || worst_row < 0) {
      worst_row_rel = rel;
      worst_row = row;
    }
    const double rms = std::sqrt(ref2 / static_cast<double>(d_v));
    for (int64_t e = row * d_v; e < (row + 1) * d_v; ++e) {
      const double err = std::fabs(static_cast<double>(got[e]) - ref[e]);
      const double share = std::isnan(err) ? INFINITY
                                            : err / (kRowAtol * rms + kRtol * std::fabs(ref[e]));
      if (share > worst_share || worst_element < 0) {
        worst_share = share;
        worst_element = e;
      }
    }
  }
  std::printf("%s: worst row %lld rel_l2 %.3g (bound %.1g); worst element [%lld] got %.9g ref "
              "%.9g = %.1f%% of its tolerance (%.0e rms(row) + %.0e |ref|)\n",
              what.c_str(), static_cast<long long>(worst_row), worst_row_rel, kRowRelL2,
              static_cast<long long>(worst_element), got[worst_element], ref[worst_element],
              100.0 * worst_share, kRowAtol, kRtol);
  EXPECT_LE(worst_row_rel, kRowRelL2) << what << ": row " << worst_row;
  EXPECT_LE(worst_share, 1.0) << what << ": element " << worst_element;
}

// Runs the GPU op twice on the problem (NaN-poisoned output each time); checks it against the
// CPU and the two runs against each other.
void CheckAgainstCpu(const Problem& p, const std::string& what) {
  const std::vector<float> ref = RunCpu(p);
  MLA_ASSERT_OK_AND_ASSIGN(auto q_start, DeviceBuffer<int32_t>::FromHost(p.q_start));
  MLA_ASSERT_OK_AND_ASSIGN(auto context_lens, DeviceBuffer<int32_t>::FromHost(p.context_lens));
  MLA_ASSERT_OK_AND_ASSIGN(auto block_tables, DeviceBuffer<int32_t>::FromHost(p.block_tables));
  MLA_ASSERT_OK_AND_ASSIGN(auto cache, DeviceBuffer<bf16>::FromHost(p.cache));
  MLA_ASSERT_OK_AND_ASSIGN(auto wkv_b, DeviceBuffer<bf16>::FromHost(p.wkv_b));
  MLA_ASSERT_OK_AND_ASSIGN(auto q, DeviceBuffer<float>::FromHost(p.q));
  MLA_ASSERT_OK_AND_ASSIGN(auto out,
                           DeviceBuffer<float>::Allocate(static_cast<int64_t>(ref.size())));
  const MlaPrefillPlan plan = PlanMlaPrefill(static_cast<int64_t>(p.context_lens.size()),
                                             p.tokens(), p.context_tokens, p.dims);
  MLA_ASSERT_OK_AND_ASSIGN(auto workspace,
                           DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes));
  MLA_ASSERT_OK(workspace.Fill(0xff));  // stale workspace: NaN
  MLA_ASSERT_OK_AND_ASSIGN(auto linear, LinearContext::Create());
  const MlaPrefillParams params =
      ParamsOf(p, q_start.get(), context_lens.get(), block_tables.get(), cache.get(), wkv_b.get(),
               q.get(), out.get());

  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    MLA_ASSERT_OK(out.Fill(0xff));
    MLA_ASSERT_OK(MlaPrefillAttention(*linear, params, plan, workspace.get(), nullptr));
    MLA_ASSERT_OK(CudaStatus(cudaDeviceSynchronize(), "sync"));
    MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> got, out.ToHost());
    if (run == 0) {
      // The whole output's L2 and NaN count here; the element bound is the per-row one.
      testing::ExpectClose(what, got, ref, {.rel_l2 = kRelL2, .atol = INFINITY, .rtol = 0.0});
      ExpectRowsClose(what, got, ref, p.dims.d_v);
      first = std::move(got);
    } else {
      EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float)))
          << what << ": two identical runs differ (a race)";
    }
  }
}

// Whole prompts (1/1, 63/63, 130/130), chunks after a cached prefix (64/20: 44 cached,
// 300/100: 200 cached, 65/1: one row after 64), and a sequence without query rows (7/0).
TEST(GpuMlaPrefillAttention, RaggedBatchWithCachedPrefixes) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Problem p = MakeProblem(V3Dims(16), {1, 63, 64, 65, 300, 7, 130},
                                {1, 63, 20, 1, 100, 0, 130}, rng);
  CheckAgainstCpu(p, "prefill 16 heads");
}

// A small batch (2 heads, 4 query tiles) for the sanitizers (scripts/gpu_test.sh runs racecheck
// on this one): a whole prompt across two query and two key tiles, a chunk after a prefix, a
// single row.
TEST(GpuMlaPrefillAttention, SmallRaggedBatch) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAgainstCpu(MakeProblem(V3Dims(2), {70, 65, 1}, {70, 33, 1}, rng), "prefill small batch");
}

// All 128 heads (a grid of 128 in y, a 32768-wide up-projection) and a head count that is not
// a power of two; a batch of one sequence of one token.
TEST(GpuMlaPrefillAttention, HeadCountsAndSingleToken) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAgainstCpu(MakeProblem(V3Dims(128), {70, 5}, {70, 2}, rng), "prefill 128 heads");
  CheckAgainstCpu(MakeProblem(V3Dims(20), {65, 33}, {33, 33}, rng), "prefill 20 heads");
  CheckAgainstCpu(MakeProblem(V3Dims(16), {1}, {1}, rng), "prefill one token");
}

// V3 widths at 128 heads over several key tiles: a chunk of 150 rows (2 full query tiles and one
// of 22) after a 150-token cached prefix, so its diagonal crosses key tiles 2-4 of 5 at offsets
// that are not multiples of 64; and a 70-token whole prompt (a tile of 64 and one of 6).
TEST(GpuMlaPrefillAttention, V3HeadsCachedPrefixOverSeveralKeyTiles) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAgainstCpu(MakeProblem(V3Dims(128), {300, 70}, {150, 70}, rng),
                  "prefill 128 heads, prefix 150 + 150 rows");
}

// A long context through the two-stage key pipeline (16 key tiles): 333 rows after a 667-token
// prefix, and a whole 250-token prompt beside it.
TEST(GpuMlaPrefillAttention, LongContext) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAgainstCpu(MakeProblem(V3Dims(2), {1000, 250}, {333, 250}, rng),
                  "prefill context 1000, prefix 667");
}

// Unsupported dims and a plan of another batch are refused before any launch, with the fields
// named (STYLE.md F6).
TEST(GpuMlaPrefillAttention, RejectsUnsupportedDimsAndMismatchedPlan) {
  MLA_SKIP_WITHOUT_GPU();
  MLA_ASSERT_OK_AND_ASSIGN(auto linear, LinearContext::Create());
  MlaPrefillParams params;
  params.dims = V3Dims(16);
  params.dims.d_v = 64;
  MlaPrefillPlan plan = PlanMlaPrefill(1, 1, 1, V3Dims(16));
  absl::Status s = MlaPrefillAttention(*linear, params, plan, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(),
            "MlaPrefillAttention: dims.d_nope, d_rope and d_v must be 128, 64 and 128, got 128, "
            "64 and 64");
  params.dims = V3Dims(16);
  params.cache = {.data = nullptr, .num_blocks = 1, .d_latent = 512, .d_rope = 64};
  params.batch.num_seqs = 2;
  s = MlaPrefillAttention(*linear, params, plan, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaPrefillAttention: plan.num_seqs is 1 but batch.num_seqs is 2");
}

}  // namespace
}  // namespace mla::kernels::cuda
