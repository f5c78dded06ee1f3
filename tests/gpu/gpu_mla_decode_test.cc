// cuda::MlaDecodeAttention (split-KV kernel + combine) vs cpu::MlaDecodeAttention over a
// poisoned paged latent cache (STYLE.md F5): unused slots and blocks hold NaN, block tables are
// shuffled, entries past a sequence's blocks point far out of range. Ragged batch of contexts
// 1, 63, 64, 65, 1000 (and a multi-row case with partial head groups, and random lengths), each
// under several plans: the planner's choice, one lane per row (no combine), lanes of 1 and 3
// tiles (cut rows, lanes holding several rows), and one lane for the whole step. Zero queries
// (uniform weights) check the value path alone.
// Tolerance (bf16 q and bf16 softmax weights on the tensor cores, fp32 accumulation and softmax
// state): out_latent relative L2 <= 1e-2 and |got - ref| <= 5e-2 * rms(ref) + 5e-2 * |ref|;
// lse |got - ref| <= 2e-2. Batched equals single, and two identical runs, bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr int32_t kHugeBlock = 1 << 30;  // block-table entries that must never be read

MlaDims V3Dims(int64_t heads) {
  return {.heads = heads, .d_latent = 512, .d_rope = 64, .d_nope = 128, .d_v = 128};
}

// One step on the host, then mirrored on the device.
struct Problem {
  MlaDims dims;
  std::vector<int32_t> q_start = {0}, context_lens, block_tables;
  int64_t max_blocks = 0, num_blocks = 0;
  std::vector<bf16> cache;
  std::vector<float> q_abs;
  float scale = 0.0f;
  int64_t tokens() const { return q_start.back(); }
  int64_t max_context() const {
    return context_lens.empty() ? 0 : *std::max_element(context_lens.begin(), context_lens.end());
  }
};

Problem MakeProblem(const MlaDims& dims, const std::vector<int32_t>& contexts,
                    const std::vector<int32_t>& q_lens, std::mt19937& rng,
                    bool zero_queries = false) {
  Problem p;
  p.dims = dims;
  p.context_lens = contexts;
  int64_t used_blocks = 0;
  for (size_t s = 0; s < contexts.size(); ++s) {
    p.q_start.push_back(p.q_start.back() + q_lens[s]);
    const int64_t blocks = (contexts[s] + kBlockSize - 1) / kBlockSize;
    p.max_blocks = std::max(p.max_blocks, blocks + 1);
    used_blocks += blocks;
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
      const int64_t slot = static_cast<int64_t>(p.block_tables[s * p.max_blocks + j / kBlockSize]) *
                               kBlockSize + j % kBlockSize;
      for (int64_t c = 0; c < d_cache; ++c) p.cache[slot * d_cache + c] = FloatToBf16(normal(rng));
    }
  }
  p.q_abs = testing::RandomNormals(rng, p.tokens() * dims.heads * d_cache, 1.0f);
  if (zero_queries) std::fill(p.q_abs.begin(), p.q_abs.end(), 0.0f);
  const RopeConfig v3{.rope_dim = 64, .factor = 40.0, .mscale = 1.0, .mscale_all_dim = 1.0};
  p.scale = cpu::SoftmaxScale(v3, dims.d_qk());
  return p;
}

struct Reference {
  std::vector<float> out, lse;
};

Reference RunCpu(const Problem& p) {
  Reference ref;
  ref.out.assign(p.tokens() * p.dims.heads * p.dims.d_latent, 0.0f);
  ref.lse.assign(p.tokens() * p.dims.heads, 0.0f);
  MlaDecodeParams params;
  params.dims = p.dims;
  params.batch = {.num_seqs = static_cast<int64_t>(p.context_lens.size()),
                  .q_start = p.q_start.data(),
                  .context_lens = p.context_lens.data(),
                  .block_tables = p.block_tables.data(),
                  .max_blocks_per_seq = p.max_blocks};
  params.cache = {.data = const_cast<bf16*>(p.cache.data()), .num_blocks = p.num_blocks,
                  .d_latent = p.dims.d_latent, .d_rope = p.dims.d_rope};
  params.q_abs = p.q_abs.data();
  params.softmax_scale = p.scale;
  params.out_latent = ref.out.data();
  params.lse = ref.lse.data();
  cpu::MlaDecodeAttention(params);
  return ref;
}

// The problem's arrays on the device, and params pointing at them.
struct DeviceProblem {
  DeviceBuffer<int32_t> q_start, context_lens, block_tables;
  DeviceBuffer<bf16> cache;
  DeviceBuffer<float> q_abs, out, lse;
  MlaDecodeParams params;
};

absl::Status Upload(const Problem& p, DeviceProblem& d) {
  auto assign = [](auto& dst, auto result) -> absl::Status {
    if (!result.ok()) return result.status();
    dst = std::move(*result);
    return absl::OkStatus();
  };
  for (absl::Status s : {assign(d.q_start, DeviceBuffer<int32_t>::FromHost(p.q_start)),
                         assign(d.context_lens, DeviceBuffer<int32_t>::FromHost(p.context_lens)),
                         assign(d.block_tables, DeviceBuffer<int32_t>::FromHost(p.block_tables)),
                         assign(d.cache, DeviceBuffer<bf16>::FromHost(p.cache)),
                         assign(d.q_abs, DeviceBuffer<float>::FromHost(p.q_abs)),
                         assign(d.out, DeviceBuffer<float>::Allocate(p.tokens() * p.dims.heads *
                                                                     p.dims.d_latent)),
                         assign(d.lse, DeviceBuffer<float>::Allocate(p.tokens() * p.dims.heads))}) {
    if (!s.ok()) return s;
  }
  d.params.dims = p.dims;
  d.params.batch = {.num_seqs = static_cast<int64_t>(p.context_lens.size()),
                    .q_start = d.q_start.get(),
                    .context_lens = d.context_lens.get(),
                    .block_tables = d.block_tables.get(),
                    .max_blocks_per_seq = p.max_blocks};
  d.params.cache = {.data = d.cache.get(), .num_blocks = p.num_blocks,
                    .d_latent = p.dims.d_latent, .d_rope = p.dims.d_rope};
  d.params.q_abs = d.q_abs.get();
  d.params.softmax_scale = p.scale;
  d.params.out_latent = d.out.get();
  d.params.lse = d.lse.get();
  return absl::OkStatus();
}

int NumSms() {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return sms;
}

// Runs the op under `plan` with NaN-poisoned outputs; returns (out, lse) on the host.
absl::Status RunGpu(DeviceProblem& d, const MlaDecodePlan& plan, cudaStream_t stream,
                    Reference& got) {
  absl::StatusOr<DeviceBuffer<unsigned char>> workspace =
      DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes);
  if (!workspace.ok()) return workspace.status();
  if (absl::Status s = d.out.Fill(0xff); !s.ok()) return s;
  if (absl::Status s = d.lse.Fill(0xff); !s.ok()) return s;
  if (absl::Status s = MlaDecodeAttention(d.params, plan, workspace->get(), stream); !s.ok()) {
    return s;
  }
  if (absl::Status s = CudaStatus(cudaStreamSynchronize(stream), "sync"); !s.ok()) return s;
  absl::StatusOr<std::vector<float>> out = d.out.ToHost();
  if (!out.ok()) return out.status();
  absl::StatusOr<std::vector<float>> lse = d.lse.ToHost();
  if (!lse.ok()) return lse.status();
  got.out = std::move(*out);
  got.lse = std::move(*lse);
  return absl::OkStatus();
}

void ExpectMatches(const std::string& what, const Reference& got, const Reference& ref) {
  testing::ExpectClose(what + " out_latent", got.out, ref.out,
                       {.rel_l2 = 1e-2, .atol = 5e-2 * testing::Rms(ref.out), .rtol = 5e-2});
  testing::ExpectClose(what + " lse", got.lse, ref.lse, {.rel_l2 = 1e-2, .atol = 2e-2, .rtol = 0.0});
}

MlaDecodePlan Plan(const Problem& p, int num_sms, const MlaDecodePlanOptions& options = {}) {
  return PlanMlaDecode(p.q_start, p.context_lens, p.dims.heads, num_sms, options);
}

void CheckAllPlans(const Problem& p) {
  const Reference ref = RunCpu(p);
  DeviceProblem d;
  MLA_ASSERT_OK(Upload(p, d));
  struct Case {
    std::string name;
    MlaDecodePlan plan;
  };
  const std::vector<Case> cases = {
      {"planned", Plan(p, NumSms())},
      {"planned for 8 SMs", Plan(p, 8)},
      {"one lane per row", Plan(p, NumSms(), {.lanes_are_tokens = true})},
      {"lanes of 64 keys", Plan(p, NumSms(), {.lane_keys = 64})},
      {"lanes of 192 keys", Plan(p, NumSms(), {.lane_keys = 192})},
      {"one lane", Plan(p, NumSms(), {.lane_keys = int64_t{1} << 30})}};
  for (const Case& c : cases) {
    std::printf("plan '%s': %d lanes%s, %d cut rows\n", c.name.c_str(), c.plan.schedule.num_lanes,
                c.plan.schedule.lanes_are_tokens ? " (one per row)" : "", c.plan.cuts.num_cuts);
    Reference got;
    MLA_ASSERT_OK(RunGpu(d, c.plan, nullptr, got));
    ExpectMatches(c.name, got, ref);
  }
}

TEST(GpuMlaDecodeAttention, RaggedBatchAllPlans) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAllPlans(MakeProblem(V3Dims(128), {1, 63, 64, 65, 1000}, {1, 1, 1, 1, 1}, rng));
}

// q = 0: every score is 0, so out = the mean of the context's values and lse = ln(keys). A
// failure here and not above points at the value product (TMA, V descriptors, P handoff); one
// above and not here, at the scores (Q layout, K descriptors, softmax).
TEST(GpuMlaDecodeAttention, ZeroQueriesAverageTheValues) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  CheckAllPlans(MakeProblem(V3Dims(128), {1, 63, 64, 65, 1000}, {1, 1, 1, 1, 1}, rng,
                            /*zero_queries=*/true));
}

// Random lengths (1 .. 3000, and a 1) as in a serving step; the planner balances them.
TEST(GpuMlaDecodeAttention, RandomLengths) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  std::uniform_int_distribution<int32_t> length(1, 3000);
  std::vector<int32_t> contexts = {1};
  for (int i = 0; i < 6; ++i) contexts.push_back(length(rng));
  CheckAllPlans(MakeProblem(V3Dims(128), contexts, std::vector<int32_t>(contexts.size(), 1), rng));
}

// Several query rows per sequence (speculative / chunked decode), an empty sequence, and head
// counts that leave a partial group of 64 (TP ranks with 16 or 80 heads).
TEST(GpuMlaDecodeAttention, MultiRowPartialHeadGroups) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  for (int64_t heads : {16, 80}) {
    std::printf("heads %lld\n", static_cast<long long>(heads));
    CheckAllPlans(MakeProblem(V3Dims(heads), {5, 0, 130, 64}, {3, 0, 2, 1}, rng));
  }
}

// Each sequence run alone gives the batched rows bit for bit (one lane per row: the same work
// per CTA), and two identical runs agree bit for bit (a difference would be a race).
TEST(GpuMlaDecodeAttention, BatchedEqualsSingleAndDeterministic) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Problem p = MakeProblem(V3Dims(128), {1, 63, 64, 65, 1000}, {1, 1, 1, 1, 1}, rng);
  DeviceProblem d;
  MLA_ASSERT_OK(Upload(p, d));
  const int64_t heads = p.dims.heads, d_latent = p.dims.d_latent, d_cache = p.dims.d_cache();
  Reference batched;
  MLA_ASSERT_OK(RunGpu(d, Plan(p, NumSms(), {.lanes_are_tokens = true}), nullptr, batched));

  for (size_t s = 0; s < p.context_lens.size(); ++s) {
    const int32_t q_begin = p.q_start[s], q_len = p.q_start[s + 1] - q_begin;
    MLA_ASSERT_OK_AND_ASSIGN(auto q_start, DeviceBuffer<int32_t>::FromHost({0, q_len}));
    DeviceProblem single;
    single.params = d.params;
    single.params.batch.num_seqs = 1;
    single.params.batch.q_start = q_start.get();
    single.params.batch.context_lens = d.context_lens.get() + s;
    single.params.batch.block_tables = d.block_tables.get() + s * p.max_blocks;
    single.params.q_abs = d.q_abs.get() + q_begin * heads * d_cache;
    MLA_ASSERT_OK_AND_ASSIGN(single.out, DeviceBuffer<float>::Allocate(q_len * heads * d_latent));
    MLA_ASSERT_OK_AND_ASSIGN(single.lse, DeviceBuffer<float>::Allocate(q_len * heads));
    single.params.out_latent = single.out.get();
    single.params.lse = single.lse.get();
    Reference alone;
    const std::vector<int32_t> one_q_start = {0, q_len}, one_context = {p.context_lens[s]};
    const MlaDecodePlan one = PlanMlaDecode(one_q_start, one_context, heads, NumSms(),
                                            {.lanes_are_tokens = true});
    MLA_ASSERT_OK(RunGpu(single, one, nullptr, alone));
    EXPECT_EQ(0, std::memcmp(alone.out.data(), batched.out.data() + q_begin * heads * d_latent,
                             alone.out.size() * sizeof(float)))
        << "sequence " << s << ": batched output differs from the sequence run alone";
    EXPECT_EQ(0, std::memcmp(alone.lse.data(), batched.lse.data() + q_begin * heads,
                             alone.lse.size() * sizeof(float)))
        << "sequence " << s << ": batched lse differs";
  }

  const MlaDecodePlan planned = Plan(p, NumSms());
  Reference first, second;
  MLA_ASSERT_OK(RunGpu(d, planned, nullptr, first));
  MLA_ASSERT_OK(RunGpu(d, planned, nullptr, second));
  EXPECT_EQ(0, std::memcmp(first.out.data(), second.out.data(), first.out.size() * sizeof(float)))
      << "two identical runs differ: a race";
}

// The run path captures into a CUDA graph (no host sync, no allocation) and replays to the
// same bits as a direct launch.
TEST(GpuMlaDecodeAttention, CapturesInCudaGraph) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Problem p = MakeProblem(V3Dims(128), {1, 63, 64, 65, 1000}, {1, 1, 1, 1, 1}, rng);
  DeviceProblem d;
  MLA_ASSERT_OK(Upload(p, d));
  const MlaDecodePlan plan = Plan(p, NumSms());
  ASSERT_GT(plan.cuts.num_cuts, 0) << "the graph should hold the split kernel and the combine";
  MLA_ASSERT_OK_AND_ASSIGN(auto workspace, DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes));
  cudaStream_t stream = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamCreate(&stream), "stream"));  // orders with Fill's memset
  Reference direct;
  MLA_ASSERT_OK(RunGpu(d, plan, stream, direct));

  MLA_ASSERT_OK(d.out.Fill(0xff));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture"));
  const absl::Status launched = MlaDecodeAttention(d.params, plan, workspace.get(), stream);
  MLA_ASSERT_OK(CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture"));
  MLA_ASSERT_OK(launched);
  MLA_ASSERT_OK(CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "instantiate"));
  MLA_ASSERT_OK(CudaStatus(cudaGraphLaunch(exec, stream), "graph launch"));
  MLA_ASSERT_OK(CudaStatus(cudaStreamSynchronize(stream), "sync"));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> replayed, d.out.ToHost());
  EXPECT_EQ(0, std::memcmp(replayed.data(), direct.out.data(), replayed.size() * sizeof(float)));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// Bad shapes are refused with a message that names the field (STYLE.md F6). No GPU needed:
// validation runs before any CUDA call.
TEST(GpuMlaDecodeAttention, RejectsUnsupportedDimsAndMismatchedPlan) {
  MlaDecodeParams params;
  params.dims = {.heads = 128, .d_latent = 256, .d_rope = 64, .d_nope = 128, .d_v = 128};
  const std::vector<int32_t> q_start = {0, 1}, short_context = {64}, long_context = {4096};
  const MlaDecodePlan plan = PlanMlaDecode(q_start, short_context, 128, 132);
  absl::Status s = MlaDecodeAttention(params, plan, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(),
            "MlaDecodeAttention: dims.d_latent must be 512 and dims.d_rope 64, got 256 and 64");

  params.dims.d_latent = 512;
  params.cache = {.data = nullptr, .num_blocks = 1, .d_latent = 512, .d_rope = 64};
  params.dims.heads = 16;
  s = MlaDecodeAttention(params, plan, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaDecodeAttention: plan.heads is 128 but dims.heads is 16");

  params.dims.heads = 128;
  const MlaDecodePlan split = PlanMlaDecode(q_start, long_context, 128, 132);
  ASSERT_GT(split.cuts.num_cuts, 0);
  s = MlaDecodeAttention(params, split, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "needs a 16-byte aligned workspace")) << s;
}

}  // namespace
}  // namespace mla::kernels::cuda
