// cuda::MlaDecodeAttention (split-KV kernel + combine) vs cpu::MlaDecodeAttention over a
// poisoned paged latent cache (STYLE.md F5): unused slots and blocks hold NaN, block tables are
// shuffled, entries past a sequence's blocks point far out of range. Ragged batch of contexts
// 1, 63, 64, 65, 1000 (and a multi-row case with partial head groups, random lengths, and rows
// of 1 .. 7 tiles), each under several plans: the
// planner's choice, one lane per row (no combine), lanes of 1 and 3 tiles (cut rows, lanes
// holding several rows), and one lane for the whole step, each run as a plain launch and as a
// fixed one (MlaDecodeBoundsFor: a larger grid and an always-launched combine), which must
// agree bit for bit. Zero queries (uniform weights) check the value path alone. A fixed launch
// captured once in a CUDA graph is replayed for three different steps, each uploading its own
// device plan.
// Tolerance (bf16 q and bf16 softmax weights on the tensor cores, fp32 accumulation and softmax
// state): out_latent relative L2 <= 1e-2 and |got - ref| <= 1e-1 * rms(ref) + 5e-2 * |ref| (the
// worst of a step's 458,752 values reached 5.1% of rms with seed 3789711002, over the 5e-2
// this bound had: bf16 q moves a peaked row's weights by a few %; a wrong tile, row or rescale
// errs by the order of rms itself);
// lse |got - ref| <= 2e-2 + 2e-3 * |ref| (the scores carry q's bf16 rounding, 2^-9 of their
// size, into lse: on the 21,760 lse values of the 170-row replay the worst was 0.0214 at
// lse 9.5, over a flat 2e-2). Batched equals single, and two identical runs, bit for bit.
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
#include "absl/strings/str_cat.h"
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

// Runs the op under `plan` (a plain launch, or a fixed one of MlaDecodeBoundsFor(plan.tokens))
// with NaN-poisoned outputs; returns (out, lse) on the host.
absl::Status RunGpu(DeviceProblem& d, const MlaDecodePlan& plan, cudaStream_t stream,
                    Reference& got, bool fixed = false) {
  const MlaDecodeLaunchBounds bounds = MlaDecodeBoundsFor(plan.tokens, plan.heads);
  const int64_t workspace_bytes = fixed ? bounds.workspace_bytes : plan.workspace_bytes;
  absl::StatusOr<DeviceBuffer<unsigned char>> workspace =
      DeviceBuffer<unsigned char>::Allocate(workspace_bytes);
  if (!workspace.ok()) return workspace.status();
  absl::StatusOr<DeviceBuffer<MlaDecodeDevicePlan>> device_plan =
      DeviceBuffer<MlaDecodeDevicePlan>::FromHost({DevicePlanOf(plan)});
  if (!device_plan.ok()) return device_plan.status();
  if (absl::Status s = d.out.Fill(0xff); !s.ok()) return s;
  if (absl::Status s = d.lse.Fill(0xff); !s.ok()) return s;
  const MlaDecodeLaunch launch{.device_plan = device_plan->get(),
                              .workspace = workspace->get(),
                              .workspace_bytes = workspace_bytes,
                              .grid_lanes = fixed ? bounds.grid_lanes : 0};
  if (absl::Status s = MlaDecodeAttention(d.params, plan, launch, stream); !s.ok()) return s;
  if (absl::Status s = CudaStatus(cudaStreamSynchronize(stream), "sync"); !s.ok()) return s;
  absl::StatusOr<std::vector<float>> out = d.out.ToHost();
  if (!out.ok()) return out.status();
  absl::StatusOr<std::vector<float>> lse = d.lse.ToHost();
  if (!lse.ok()) return lse.status();
  got.out = std::move(*out);
  got.lse = std::move(*lse);
  return absl::OkStatus();
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void ExpectMatches(const std::string& what, const Reference& got, const Reference& ref) {
  testing::ExpectClose(what + " out_latent", got.out, ref.out,
                       {.rel_l2 = 1e-2, .atol = 1e-1 * testing::Rms(ref.out), .rtol = 5e-2});
  testing::ExpectClose(what + " lse", got.lse, ref.lse,
                       {.rel_l2 = 1e-2, .atol = 2e-2, .rtol = 2e-3});
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
    Reference got, fixed;
    MLA_ASSERT_OK(RunGpu(d, c.plan, nullptr, got));
    ExpectMatches(c.name, got, ref);
    // A fixed launch runs the same work per CTA (its extra CTAs and combine blocks exit).
    MLA_ASSERT_OK(RunGpu(d, c.plan, nullptr, fixed, /*fixed=*/true));
    EXPECT_TRUE(SameBits(fixed.out, got.out) && SameBits(fixed.lse, got.lse))
        << c.name << ": a fixed launch differs from the plain one";
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

// Rows of 1 .. 7 tiles: pieces of every length, odd and even; in one lane, and in lanes of 3
// tiles (cut mid-row), pieces begin in either cache stage. Zero queries as well (the value path
// alone). Written for a schedule that took tiles in pairs (bench/RESULTS.md, run 7); kept for
// the piece boundaries it covers.
TEST(GpuMlaDecodeAttention, PairsAndTailsOfTiles) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  for (const bool zero_queries : {false, true}) {
    std::printf("zero queries: %d\n", zero_queries);
    CheckAllPlans(MakeProblem(V3Dims(128), {50, 100, 150, 250, 300, 400, 420},
                              std::vector<int32_t>(7, 1), rng, zero_queries));
  }
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
  MLA_ASSERT_OK_AND_ASSIGN(auto device_plan,
                           DeviceBuffer<MlaDecodeDevicePlan>::FromHost({DevicePlanOf(plan)}));
  const MlaDecodeLaunch launch{.device_plan = device_plan.get(),
                              .workspace = workspace.get(),
                              .workspace_bytes = plan.workspace_bytes};
  cudaStream_t stream = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamCreate(&stream), "stream"));  // orders with Fill's memset
  Reference direct;
  MLA_ASSERT_OK(RunGpu(d, plan, stream, direct));

  MLA_ASSERT_OK(d.out.Fill(0xff));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture"));
  const absl::Status launched = MlaDecodeAttention(d.params, plan, launch, stream);
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

// A fixed launch captured once in a CUDA graph serves three different steps: before each
// replay the step's device plan is copied into the one plan buffer and its inputs into the same
// buffers, laid out in the graph's fixed shapes (kMaxSeqs sequences, the unused ones empty;
// block tables of a fixed width; one cache pool). Steps: a ragged batch whose long row is cut,
// 170 rows of 2-row sequences with one lane per row (more lanes than kMaxLanes), and 17
// sequences of 0-3 rows in lanes of 2 tiles (many cuts, lanes of several rows); all fewer rows
// than the bound. Each replay matches the CPU and, bit for bit, a plain launch of the same plan;
// output rows past the step's rows keep their NaN poison.
TEST(GpuMlaDecodeAttention, FixedLaunchGraphReplaysNewPlans) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  constexpr int64_t kHeads = 128, kMaxTokens = 192, kMaxSeqs = 96;
  const MlaDims dims = V3Dims(kHeads);
  std::vector<Problem> steps;
  std::vector<MlaDecodePlan> plans;
  steps.push_back(MakeProblem(dims, {1, 63, 64, 65, 3000, 130, 700}, std::vector<int32_t>(7, 1), rng));
  plans.push_back(Plan(steps.back(), NumSms()));
  ASSERT_GT(plans.back().cuts.num_cuts, 0);
  std::uniform_int_distribution<int32_t> short_len(2, 300), long_len(3, 2000), rows(0, 3);
  std::vector<int32_t> contexts(85), q_lens(85, 2);
  for (int32_t& c : contexts) c = short_len(rng);
  steps.push_back(MakeProblem(dims, contexts, q_lens, rng));
  plans.push_back(Plan(steps.back(), NumSms(), {.lanes_are_tokens = true}));
  ASSERT_GT(plans.back().schedule.num_lanes, kMaxLanes);
  contexts.assign(17, 0);
  q_lens.assign(17, 0);
  for (size_t s = 1; s < contexts.size(); ++s) {
    q_lens[s] = rows(rng);
    contexts[s] = q_lens[s] == 0 ? 0 : long_len(rng);
  }
  steps.push_back(MakeProblem(dims, contexts, q_lens, rng));
  plans.push_back(Plan(steps.back(), NumSms(), {.lane_keys = 128}));
  ASSERT_GT(plans.back().cuts.num_cuts, 1);

  int64_t table_width = 0, pool_blocks = 0;
  for (const Problem& p : steps) {
    ASSERT_LT(p.tokens(), kMaxTokens);
    ASSERT_LE(static_cast<int64_t>(p.context_lens.size()), kMaxSeqs);
    table_width = std::max(table_width, p.max_blocks);
    pool_blocks = std::max(pool_blocks, p.num_blocks);
  }
  const MlaDecodeLaunchBounds bounds = MlaDecodeBoundsFor(kMaxTokens, kHeads);
  const int64_t out_rows = kMaxTokens * kHeads;
  DeviceProblem d;
  MLA_ASSERT_OK_AND_ASSIGN(d.q_start, DeviceBuffer<int32_t>::Allocate(kMaxSeqs + 1));
  MLA_ASSERT_OK_AND_ASSIGN(d.context_lens, DeviceBuffer<int32_t>::Allocate(kMaxSeqs));
  MLA_ASSERT_OK_AND_ASSIGN(d.block_tables, DeviceBuffer<int32_t>::Allocate(kMaxSeqs * table_width));
  MLA_ASSERT_OK_AND_ASSIGN(d.cache, DeviceBuffer<bf16>::Allocate(pool_blocks * kBlockSize * 576));
  MLA_ASSERT_OK_AND_ASSIGN(d.q_abs, DeviceBuffer<float>::Allocate(out_rows * 576));
  MLA_ASSERT_OK_AND_ASSIGN(d.out, DeviceBuffer<float>::Allocate(out_rows * 512));
  MLA_ASSERT_OK_AND_ASSIGN(d.lse, DeviceBuffer<float>::Allocate(out_rows));
  MLA_ASSERT_OK_AND_ASSIGN(auto device_plan, DeviceBuffer<MlaDecodeDevicePlan>::Allocate(1));
  MLA_ASSERT_OK_AND_ASSIGN(auto workspace, DeviceBuffer<unsigned char>::Allocate(bounds.workspace_bytes));
  d.params.dims = dims;
  d.params.batch = {.num_seqs = kMaxSeqs, .q_start = d.q_start.get(),
                    .context_lens = d.context_lens.get(), .block_tables = d.block_tables.get(),
                    .max_blocks_per_seq = table_width};
  d.params.cache = {.data = d.cache.get(), .num_blocks = pool_blocks, .d_latent = 512, .d_rope = 64};
  d.params.q_abs = d.q_abs.get();
  d.params.softmax_scale = steps[0].scale;
  d.params.out_latent = d.out.get();
  d.params.lse = d.lse.get();
  const MlaDecodeLaunch fixed{.device_plan = device_plan.get(), .workspace = workspace.get(),
                              .workspace_bytes = bounds.workspace_bytes,
                              .grid_lanes = bounds.grid_lanes};

  cudaStream_t stream = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamCreate(&stream), "stream"));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture"));
  const absl::Status launched = MlaDecodeAttention(d.params, plans[0], fixed, stream);
  MLA_ASSERT_OK(CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture"));
  MLA_ASSERT_OK(launched);
  MLA_ASSERT_OK(CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "instantiate"));

  auto copy = [&](void* dst, const void* src, size_t bytes) {
    return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "upload");
  };
  auto poison_outputs = [&] {
    const absl::Status s = CudaStatus(cudaMemsetAsync(d.out.get(), 0xff, d.out.bytes(), stream), "poison");
    return s.ok() ? CudaStatus(cudaMemsetAsync(d.lse.get(), 0xff, d.lse.bytes(), stream), "poison") : s;
  };
  auto download = [&](Reference& got) -> absl::Status {
    if (absl::Status s = CudaStatus(cudaStreamSynchronize(stream), "sync"); !s.ok()) return s;
    absl::StatusOr<std::vector<float>> out = d.out.ToHost(), lse = d.lse.ToHost();
    if (!out.ok() || !lse.ok()) return out.ok() ? lse.status() : out.status();
    got = {std::move(*out), std::move(*lse)};
    return absl::OkStatus();
  };
  for (size_t k = 0; k < steps.size(); ++k) {
    const Problem& p = steps[k];
    const MlaDecodePlan& plan = plans[k];
    const int64_t num_seqs = static_cast<int64_t>(p.context_lens.size()), tokens = p.tokens();
    std::printf("step %zu: %lld rows, %d lanes%s, %d cut rows\n", k, static_cast<long long>(tokens),
                plan.schedule.num_lanes, plan.schedule.lanes_are_tokens ? " (one per row)" : "",
                plan.cuts.num_cuts);
    // The step in the graph's shapes: trailing empty sequences, tables of table_width entries.
    std::vector<int32_t> q_start(p.q_start), context_lens(p.context_lens);
    q_start.resize(kMaxSeqs + 1, static_cast<int32_t>(tokens));
    context_lens.resize(kMaxSeqs, 0);
    std::vector<int32_t> tables(kMaxSeqs * table_width, kHugeBlock);
    for (int64_t s = 0; s < num_seqs; ++s) {
      std::copy_n(p.block_tables.begin() + s * p.max_blocks, p.max_blocks,
                  tables.begin() + s * table_width);
    }
    const MlaDecodeDevicePlan step_plan = DevicePlanOf(plan);
    MLA_ASSERT_OK(d.cache.Fill(0xff));  // blocks past the step's stay NaN
    MLA_ASSERT_OK(d.q_abs.Fill(0xff));  // rows past the step's too
    MLA_ASSERT_OK(copy(d.q_start.get(), q_start.data(), q_start.size() * sizeof(int32_t)));
    MLA_ASSERT_OK(copy(d.context_lens.get(), context_lens.data(), context_lens.size() * sizeof(int32_t)));
    MLA_ASSERT_OK(copy(d.block_tables.get(), tables.data(), tables.size() * sizeof(int32_t)));
    MLA_ASSERT_OK(copy(d.cache.get(), p.cache.data(), p.cache.size() * sizeof(bf16)));
    MLA_ASSERT_OK(copy(d.q_abs.get(), p.q_abs.data(), p.q_abs.size() * sizeof(float)));
    MLA_ASSERT_OK(copy(device_plan.get(), &step_plan, sizeof(step_plan)));
    MLA_ASSERT_OK(poison_outputs());
    MLA_ASSERT_OK(CudaStatus(cudaGraphLaunch(exec, stream), "graph replay"));
    Reference replayed;
    MLA_ASSERT_OK(download(replayed));

    const Reference ref = RunCpu(p);
    const int64_t rows = tokens * kHeads;
    const Reference head{{replayed.out.begin(), replayed.out.begin() + rows * 512},
                         {replayed.lse.begin(), replayed.lse.begin() + rows}};
    ExpectMatches("step " + std::to_string(k) + " replay", head, ref);
    const std::vector<float> poison_out(replayed.out.begin() + rows * 512, replayed.out.end());
    const std::vector<float> poison_lse(replayed.lse.begin() + rows, replayed.lse.end());
    auto all_poison = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float x) {
        uint32_t bits;
        std::memcpy(&bits, &x, sizeof(bits));
        return bits == 0xffffffffu;
      });
    };
    EXPECT_TRUE(all_poison(poison_out) && all_poison(poison_lse))
        << "step " << k << ": rows past the step's " << tokens << " were written";

    MLA_ASSERT_OK_AND_ASSIGN(auto plain_workspace,
                             DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes));
    const MlaDecodeLaunch plain{.device_plan = device_plan.get(),
                                .workspace = plain_workspace.get(),
                                .workspace_bytes = plan.workspace_bytes};
    MLA_ASSERT_OK(poison_outputs());
    MLA_ASSERT_OK(MlaDecodeAttention(d.params, plan, plain, stream));
    Reference direct;
    MLA_ASSERT_OK(download(direct));
    EXPECT_TRUE(SameBits(direct.out, replayed.out) && SameBits(direct.lse, replayed.lse))
        << "step " << k << ": the replayed fixed launch differs from a plain launch";
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// Bad shapes and launches are refused with a message that names the field (STYLE.md F6). No
// GPU needed: validation runs before any CUDA call (the pointers below are never used).
TEST(GpuMlaDecodeAttention, RejectsUnsupportedDimsAndMismatchedPlan) {
  MlaDecodeParams params;
  params.dims = {.heads = 128, .d_latent = 256, .d_rope = 64, .d_nope = 128, .d_v = 128};
  const std::vector<int32_t> q_start = {0, 1}, short_context = {64}, long_context = {4096};
  const MlaDecodePlan plan = PlanMlaDecode(q_start, short_context, 128, 132);
  absl::Status s = MlaDecodeAttention(params, plan, MlaDecodeLaunch{}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(),
            "MlaDecodeAttention: dims.d_latent must be 512 and dims.d_rope 64, got 256 and 64");

  params.dims.d_latent = 512;
  params.cache = {.data = nullptr, .num_blocks = 1, .d_latent = 512, .d_rope = 64};
  params.dims.heads = 16;
  s = MlaDecodeAttention(params, plan, MlaDecodeLaunch{}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaDecodeAttention: plan.heads is 128 but dims.heads is 16");

  params.dims.heads = 128;
  s = MlaDecodeAttention(params, plan, MlaDecodeLaunch{}, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MlaDecodeAttention: launch.device_plan must be a 16-byte aligned "
                         "device copy of the plan (DevicePlanOf), got 0");

  MlaDecodeLaunch launch{.device_plan = reinterpret_cast<const MlaDecodeDevicePlan*>(uintptr_t{1} << 20)};
  const MlaDecodePlan split = PlanMlaDecode(q_start, long_context, 128, 132);
  ASSERT_GT(split.cuts.num_cuts, 0);
  s = MlaDecodeAttention(params, split, launch, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), absl::StrCat("MlaDecodeAttention: launch.workspace must be 16-byte "
                                      "aligned and hold ", split.workspace_bytes, " bytes (",
                                      split.num_slots(), " slots of 128 heads), got 0 bytes at 0"));
  s = MlaDecodeCombine(split, launch, nullptr, nullptr, nullptr);
  EXPECT_TRUE(absl::StartsWith(s.message(), "MlaDecodeCombine: launch.workspace must be")) << s;

  launch.grid_lanes = 64;  // a fixed launch must cover kMaxLanes lanes
  s = MlaDecodeAttention(params, split, launch, nullptr);
  EXPECT_EQ(s.message(), "MlaDecodeAttention: launch.grid_lanes must be 0 (a plain launch) or in "
                         "[160, 2^31 / 2) (MlaDecodeBoundsFor), got 64");
  std::vector<int32_t> many_rows = {0}, many_contexts;
  for (int i = 0; i < 300; ++i) {
    many_rows.push_back(i + 1);
    many_contexts.push_back(64);
  }
  const MlaDecodePlan rows = PlanMlaDecode(many_rows, many_contexts, 128, 132, {.lanes_are_tokens = true});
  launch.grid_lanes = MlaDecodeBoundsFor(200, 128).grid_lanes;
  s = MlaDecodeAttention(params, rows, launch, nullptr);
  EXPECT_EQ(s.message(),
            "MlaDecodeAttention: the plan has 300 lanes (300 tokens), more than launch.grid_lanes 200");
  launch.grid_lanes = MlaDecodeBoundsFor(300, 128).grid_lanes;
  launch.workspace = reinterpret_cast<void*>(uintptr_t{1} << 21);
  launch.workspace_bytes = split.workspace_bytes;  // a plain launch's is too small for a fixed one
  s = MlaDecodeAttention(params, rows, launch, nullptr);
  EXPECT_TRUE(absl::StrContains(
      s.message(), absl::StrCat("hold ", MlaDecodeBoundsFor(300, 128).workspace_bytes,
                                " bytes (320 slots of 128 heads, a fixed launch)")))
      << s;
}

}  // namespace
}  // namespace mla::kernels::cuda
