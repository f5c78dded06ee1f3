// cuda::MoeGroupedGateUp and cuda::MoeGroupedDown (moe_grouped.h) vs per-expert cpu::Linear and
// cpu::SiluMul on each local expert's gathered rows (offsets and pairs from cpu::MoeDispatch), and
// cuda::MoeCombineRange vs cuda::MoeCombine. Fresh random inputs (routing included); outputs
// poisoned with NaN: rows past the local range must keep it bit for bit; the down input's rows
// past the range are NaN (must not be read). Tolerances (inputs rounded to bf16 by the kernels):
// - vs the CPU on the same bf16-rounded inputs (only the fp32 summation order differs: tensor-core
//   sums, 4-way split K): relative L2 <= 1e-4, |got - ref| <= 1e-4 rms(ref) + 1e-4 |ref|;
// - vs the CPU on the unrounded float inputs, "bf16 operands" (GPU.md): relative L2 <= 1e-2,
//   |got - ref| <= 5e-2 rms(ref) + 2e-2 |ref|: silu(g) * u multiplies g's rounding error by u, a
//   heavier tail than gpu_linear_test's plain product (numpy, V3 sizes, 460 rows, 7 seeds: worst
//   element <= 0.68 of 4e-2 rms + 2e-2 |ref|, but 1.2 of its 2e-2 rms; relative L2 ~2.4e-3);
// - the chain GateUp -> Down -> MoeCombineRange vs the CPU layer on float (Linear, SiluMul,
//   Linear, MoeCombine): the same bf16-operand bound;
// - MoeCombineRange vs MoeCombine with the range on the host: bit-identical.
// Cases: the tiny preset's shapes (8 experts, top 2, hidden 256, width 64) with all experts local
// and as rank 1 of 2, one with no local rows; odd sizes (hidden 136, width 72: a partial K block
// and a partial column tile) with a hot expert (16 row passes) and zero-row experts; V3's shapes
// (hidden 7168, width 2048, 256 experts, top 8) for one rank's 8 experts. Tokens 1, 7, 64, 256.
// A CUDA graph captured once replays new routings (counts change, launch stays).
#include <cuda_runtime.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/cuda/moe/moe_grouped.h"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace mla::kernels::cuda {
namespace {

constexpr uint32_t kPoisonBits = 0xffffffffu;  // Fill(0xff)

struct Shape {
  std::string name;
  int64_t num_experts = 0, top_k = 0;   // global experts, choices per token
  int64_t expert_begin = 0, local = 0;  // this rank's: [expert_begin, expert_begin + local)
  int64_t hidden = 0, width = 0;
};

// How tokens choose experts: top_k distinct ones each, expert e with probability proportional to
// its weight: 1, local_weight for this rank's experts, hot_weight for `hot`, 0 for `cold`.
struct Routing {
  double local_weight = 1.0;
  int64_t hot = -1;
  double hot_weight = 1.0;
  std::vector<int64_t> cold;
};

std::vector<int32_t> Route(std::mt19937& rng, const Shape& s, const Routing& r, int64_t tokens) {
  std::vector<double> weight(s.num_experts, 1.0);
  for (int64_t e = s.expert_begin; e < s.expert_begin + s.local; ++e) weight[e] = r.local_weight;
  if (r.hot >= 0) weight[r.hot] = r.hot_weight;
  for (int64_t e : r.cold) weight[e] = 0.0;
  std::vector<int32_t> ids(tokens * s.top_k);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> left = weight;
    for (int64_t c = 0; c < s.top_k; ++c) {
      std::discrete_distribution<int32_t> pick(left.begin(), left.end());
      const int32_t e = pick(rng);
      ids[t * s.top_k + c] = e;
      left[e] = 0.0;
    }
  }
  return ids;
}

// The local experts' weights on the host and the device, with the device pointer arrays.
struct Experts {
  std::vector<bf16> gate, up, down;  // [local, width, hidden] x2, [local, hidden, width]
  DeviceBuffer<bf16> d_gate, d_up, d_down;
  DeviceBuffer<const bf16*> gate_ptrs, up_ptrs, down_ptrs;

  // Local expert i's matrix in `all` (gate, up or down).
  static const bf16* Of(const std::vector<bf16>& all, int64_t i, const Shape& s) {
    return &all[i * s.width * s.hidden];
  }
  MoeGroupedWeights Weights(const Shape& s) const {
    return {.gate = gate_ptrs.get(), .up = up_ptrs.get(), .down = down_ptrs.get(),
            .expert_begin = s.expert_begin, .num_experts = s.local, .hidden = s.hidden,
            .width = s.width};
  }
};

// Uniform weights of standard deviation 1/sqrt(in), so each product has unit scale.
absl::Status MakeExperts(const Shape& s, std::mt19937& rng, Experts& ex) {
  const int64_t n = s.local * s.width * s.hidden;
  const float a_in = std::sqrt(3.0f / s.hidden), a_down = std::sqrt(3.0f / s.width);
  ex.gate = testing::ToBf16(testing::RandomFloats(rng, n, -a_in, a_in));
  ex.up = testing::ToBf16(testing::RandomFloats(rng, n, -a_in, a_in));
  ex.down = testing::ToBf16(testing::RandomFloats(rng, n, -a_down, a_down));
  for (auto [host, device, ptrs] : {std::tuple{&ex.gate, &ex.d_gate, &ex.gate_ptrs},
                                    std::tuple{&ex.up, &ex.d_up, &ex.up_ptrs},
                                    std::tuple{&ex.down, &ex.d_down, &ex.down_ptrs}}) {
    absl::StatusOr<DeviceBuffer<bf16>> matrices = DeviceBuffer<bf16>::FromHost(*host);
    if (!matrices.ok()) return matrices.status();
    *device = std::move(*matrices);
    std::vector<const bf16*> p(s.local);
    for (int64_t i = 0; i < s.local; ++i) p[i] = device->get() + i * s.width * s.hidden;
    absl::StatusOr<DeviceBuffer<const bf16*>> array = DeviceBuffer<const bf16*>::FromHost(p);
    if (!array.ok()) return array.status();
    *ptrs = std::move(*array);
  }
  return absl::OkStatus();
}

std::vector<float> Rounded(std::vector<float> v) {
  for (float& x : v) x = RoundToBf16(x);
  return v;
}

// CPU references over the local range, rows in sorted order: [count, width] / [count, hidden].
struct Reference {
  const Shape& s;
  const Experts& ex;
  const std::vector<int32_t>& offsets;
  const std::vector<int32_t>& sorted;

  // silu(x_r gate^T) * (x_r up^T), x_r = x[sorted[j] / top_k].
  std::vector<float> GateUp(const std::vector<float>& x) const {
    std::vector<float> act;
    for (int64_t i = 0; i < s.local; ++i) {
      const int64_t e = s.expert_begin + i, rows = offsets[e + 1] - offsets[e];
      std::vector<float> xs(rows * s.hidden), g(rows * s.width), u(rows * s.width);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t token = sorted[offsets[e] + r] / s.top_k;
        std::memcpy(&xs[r * s.hidden], &x[token * s.hidden], s.hidden * sizeof(float));
      }
      cpu::Linear(xs.data(), Experts::Of(ex.gate, i, s), rows, s.hidden, s.width, g.data());
      cpu::Linear(xs.data(), Experts::Of(ex.up, i, s), rows, s.hidden, s.width, u.data());
      cpu::SiluMul(g.data(), u.data(), rows * s.width, g.data());
      act.insert(act.end(), g.begin(), g.end());
    }
    return act;
  }

  // act[r] down^T for the range's rows of act ([count, width] or longer).
  std::vector<float> Down(const std::vector<float>& act) const {
    std::vector<float> y;
    const int64_t first = offsets[s.expert_begin];
    for (int64_t i = 0; i < s.local; ++i) {
      const int64_t e = s.expert_begin + i, rows = offsets[e + 1] - offsets[e];
      std::vector<float> out(rows * s.hidden);
      cpu::Linear(&act[(offsets[e] - first) * s.width], Experts::Of(ex.down, i, s), rows,
                  s.width, s.hidden, out.data());
      y.insert(y.end(), out.begin(), out.end());
    }
    return y;
  }
};

// The first `valid` floats of got against ref (both tolerances named in the file comment), and
// the rest of got still the poison.
void ExpectRows(const std::string& what, const std::vector<float>& got, int64_t valid,
                const std::vector<float>& ref_rounded, const std::vector<float>& ref_float) {
  const std::vector<float> head(got.begin(), got.begin() + valid);
  if (valid > 0) {
    testing::ExpectClose(what + " (same bf16 operands)", head, ref_rounded,
                         {.rel_l2 = 1e-4, .atol = 1e-4 * testing::Rms(ref_rounded), .rtol = 1e-4});
    testing::ExpectClose(what + " (vs float inputs)", head, ref_float,
                         {.rel_l2 = 1e-2, .atol = 5e-2 * testing::Rms(ref_float), .rtol = 2e-2});
  }
  const int64_t touched = std::count_if(got.begin() + valid, got.end(), [](float v) {
    return std::bit_cast<uint32_t>(v) != kPoisonBits;
  });
  EXPECT_EQ(touched, 0) << what << ": values written past the range's " << valid << " floats";
}

// Everything for one routing of `tokens` tokens.
void CheckStep(const Shape& s, const Experts& ex, const Routing& routing, int64_t tokens,
               std::mt19937& rng) {
  const std::vector<int32_t> ids = Route(rng, s, routing, tokens);
  std::vector<int32_t> offsets(s.num_experts + 1), sorted(ids.size());
  cpu::MoeDispatch(ids.data(), tokens, s.top_k, s.num_experts, offsets.data(), sorted.data());
  const int64_t first = offsets[s.expert_begin];
  const int64_t count = offsets[s.expert_begin + s.local] - first;
  const int64_t max_rows = tokens * s.top_k;
  const std::string what = s.name + " T=" + std::to_string(tokens);
  std::printf("%s: %lld local rows of %lld; per expert:", what.c_str(),
              static_cast<long long>(count), static_cast<long long>(max_rows));
  for (int64_t e = s.expert_begin; e < s.expert_begin + s.local; ++e) {
    std::printf(" %d", offsets[e + 1] - offsets[e]);
  }
  std::printf("\n");
  const Reference ref{s, ex, offsets, sorted};
  const MoeGroupedWeights w = ex.Weights(s);

  MLA_ASSERT_OK_AND_ASSIGN(auto d_offsets, DeviceBuffer<int32_t>::FromHost(offsets));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_sorted, DeviceBuffer<int32_t>::FromHost(sorted));

  // Gate/up on x.
  const std::vector<float> x = testing::RandomNormals(rng, tokens * s.hidden, 1.0f);
  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::FromHost(x));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_act, DeviceBuffer<float>::Allocate(max_rows * s.width));
  MLA_ASSERT_OK(d_act.Fill(0xff));
  MLA_ASSERT_OK(MoeGroupedGateUp(d_x.get(), d_offsets.get(), d_sorted.get(), s.top_k, max_rows, w,
                                 d_act.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> act, d_act.ToHost());
  const std::vector<float> ref_act = ref.GateUp(x);
  ExpectRows(what + " gate/up", act, count * s.width, ref.GateUp(Rounded(x)), ref_act);

  // Down on fresh rows; the input rows past the range are NaN.
  std::vector<float> a = testing::RandomNormals(rng, max_rows * s.width, 1.0f);
  std::fill(a.begin() + count * s.width, a.end(), std::nanf(""));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_a, DeviceBuffer<float>::FromHost(a));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::Allocate(max_rows * s.hidden));
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(MoeGroupedDown(d_a.get(), d_offsets.get(), max_rows, w, d_y.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> y, d_y.ToHost());
  ExpectRows(what + " down", y, count * s.hidden, ref.Down(Rounded(a)), ref.Down(a));

  // The chain: down on the kernel's act, then both combines into the same start.
  MLA_ASSERT_OK(d_y.Fill(0xff));
  MLA_ASSERT_OK(MoeGroupedDown(d_act.get(), d_offsets.get(), max_rows, w, d_y.get(), nullptr));
  const std::vector<float> weights = testing::RandomFloats(rng, tokens * s.top_k, 0.05f, 1.0f);
  const std::vector<float> out0 = testing::RandomNormals(rng, tokens * s.hidden, 1.0f);
  MLA_ASSERT_OK_AND_ASSIGN(auto d_weights, DeviceBuffer<float>::FromHost(weights));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::FromHost(out0));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out_range, DeviceBuffer<float>::FromHost(out0));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<unsigned char>::Allocate(
                                          MoeCombineWorkspaceBytes(tokens, s.top_k)));
  MLA_ASSERT_OK(MoeCombine(d_y.get(), d_sorted.get() + first, d_weights.get(), count, tokens,
                           s.top_k, s.hidden, d_ws.get(), d_out.get(), nullptr));
  MLA_ASSERT_OK(d_ws.Fill(0x5a));  // stale workspace
  MLA_ASSERT_OK(MoeCombineRange(d_y.get(), d_sorted.get(), d_offsets.get() + s.expert_begin,
                                d_offsets.get() + s.expert_begin + s.local, d_weights.get(),
                                max_rows, tokens, s.top_k, s.hidden, d_ws.get(),
                                d_out_range.get(), nullptr));
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> out, d_out.ToHost());
  MLA_ASSERT_OK_AND_ASSIGN(std::vector<float> out_range, d_out_range.ToHost());
  EXPECT_EQ(0, std::memcmp(out.data(), out_range.data(), out.size() * sizeof(float)))
      << what << ": MoeCombineRange is not MoeCombine bit for bit";
  std::vector<float> ref_out = out0;
  const std::vector<float> ref_y = ref.Down(ref_act);
  cpu::MoeCombine(ref_y.data(), sorted.data() + first, weights.data(), count, s.top_k, s.hidden,
                  ref_out.data());
  const testing::Tolerance bf16_operands{.rel_l2 = 1e-2, .atol = 5e-2 * testing::Rms(ref_out),
                                         .rtol = 2e-2};
  testing::ExpectClose(what + " chain (vs float CPU layer)", out_range, ref_out, bf16_operands);
}

const Shape kTiny{.name = "tiny, all 8 experts", .num_experts = 8, .top_k = 2,
                  .expert_begin = 0, .local = 8, .hidden = 256, .width = 64};
const Shape kTinyRank1{.name = "tiny, rank 1 of 2 (experts 4-7)", .num_experts = 8, .top_k = 2,
                       .expert_begin = 4, .local = 4, .hidden = 256, .width = 64};
const Shape kOdd{.name = "odd sizes, experts 3-11 of 16", .num_experts = 16, .top_k = 4,
                 .expert_begin = 3, .local = 9, .hidden = 136, .width = 72};
const Shape kV3{.name = "V3, experts 40-47 of 256", .num_experts = 256, .top_k = 8,
                .expert_begin = 40, .local = 8, .hidden = 7168, .width = 2048};

TEST(GpuMoeGrouped, TinyPreset) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  Experts all, rank1;
  MLA_ASSERT_OK(MakeExperts(kTiny, rng, all));
  MLA_ASSERT_OK(MakeExperts(kTinyRank1, rng, rank1));
  for (int64_t tokens : {1, 7, 64, 256}) CheckStep(kTiny, all, Routing{}, tokens, rng);
  for (int64_t tokens : {7, 64}) CheckStep(kTinyRank1, rank1, Routing{.cold = {5}}, tokens, rng);
  CheckStep(kTinyRank1, rank1, Routing{.cold = {4, 5, 6, 7}}, 7, rng);  // no local rows
}

TEST(GpuMoeGrouped, OddSizesHotAndEmptyExperts) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  Experts ex;
  MLA_ASSERT_OK(MakeExperts(kOdd, rng, ex));
  const Routing routing{.hot = 6, .hot_weight = 50.0, .cold = {4, 9}};
  for (int64_t tokens : {1, 7, 256}) CheckStep(kOdd, ex, routing, tokens, rng);
}

TEST(GpuMoeGrouped, V3Shapes) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  Experts ex;
  MLA_ASSERT_OK(MakeExperts(kV3, rng, ex));
  const Routing routing{.local_weight = 8.0, .hot = 43, .hot_weight = 40.0, .cold = {45}};
  for (int64_t tokens : {1, 7, 64, 256}) CheckStep(kV3, ex, routing, tokens, rng);
}

// One capture of GateUp -> Down -> MoeCombineRange serves new routings: before each replay the
// step's offsets, pairs and x are copied into the captured buffers; the replay matches, bit for
// bit, plain launches on the same inputs.
TEST(GpuMoeGrouped, GraphReplaysNewRoutings) {
  MLA_SKIP_WITHOUT_GPU();
  std::mt19937 rng(testing::TestSeed());
  const Shape& s = kOdd;
  Experts ex;
  MLA_ASSERT_OK(MakeExperts(s, rng, ex));
  const MoeGroupedWeights w = ex.Weights(s);
  const int64_t tokens = 64, max_rows = tokens * s.top_k;
  MLA_ASSERT_OK_AND_ASSIGN(auto d_offsets, DeviceBuffer<int32_t>::Allocate(s.num_experts + 1));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_sorted, DeviceBuffer<int32_t>::Allocate(max_rows));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_x, DeviceBuffer<float>::Allocate(tokens * s.hidden));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_act, DeviceBuffer<float>::Allocate(max_rows * s.width));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_y, DeviceBuffer<float>::Allocate(max_rows * s.hidden));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_weights, DeviceBuffer<float>::Allocate(tokens * s.top_k));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_out, DeviceBuffer<float>::Allocate(tokens * s.hidden));
  MLA_ASSERT_OK_AND_ASSIGN(auto d_ws, DeviceBuffer<unsigned char>::Allocate(
                                          MoeCombineWorkspaceBytes(tokens, s.top_k)));
  cudaStream_t stream = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamCreate(&stream), "stream"));  // orders with the memsets
  auto enqueue = [&]() -> absl::Status {
    absl::Status st = MoeGroupedGateUp(d_x.get(), d_offsets.get(), d_sorted.get(), s.top_k,
                                       max_rows, w, d_act.get(), stream);
    if (st.ok()) st = MoeGroupedDown(d_act.get(), d_offsets.get(), max_rows, w, d_y.get(), stream);
    if (st.ok()) {
      st = MoeCombineRange(d_y.get(), d_sorted.get(), d_offsets.get() + s.expert_begin,
                           d_offsets.get() + s.expert_begin + s.local, d_weights.get(), max_rows,
                           tokens, s.top_k, s.hidden, d_ws.get(), d_out.get(), stream);
    }
    return st;
  };
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_ASSERT_OK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "capture"));
  const absl::Status captured = enqueue();
  MLA_ASSERT_OK(CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture"));
  MLA_ASSERT_OK(captured);
  MLA_ASSERT_OK(CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "instantiate"));

  const Routing routings[] = {Routing{}, Routing{.hot = 6, .hot_weight = 50.0, .cold = {4, 9}},
                              Routing{.cold = {3, 4, 5, 6, 7, 8, 9, 10, 11}}};
  for (const Routing& routing : routings) {
    const std::vector<int32_t> ids = Route(rng, s, routing, tokens);
    std::vector<int32_t> offsets(s.num_experts + 1), sorted(ids.size());
    cpu::MoeDispatch(ids.data(), tokens, s.top_k, s.num_experts, offsets.data(), sorted.data());
    const int32_t local_rows = offsets[s.expert_begin + s.local] - offsets[s.expert_begin];
    std::printf("graph replay: %d local rows\n", local_rows);
    const std::vector<float> out0 = testing::RandomNormals(rng, tokens * s.hidden, 1.0f);
    MLA_ASSERT_OK(d_offsets.CopyFromHost(offsets));
    MLA_ASSERT_OK(d_sorted.CopyFromHost(sorted));
    MLA_ASSERT_OK(d_x.CopyFromHost(testing::RandomNormals(rng, tokens * s.hidden, 1.0f)));
    MLA_ASSERT_OK(
        d_weights.CopyFromHost(testing::RandomFloats(rng, tokens * s.top_k, 0.05f, 1.0f)));
    std::vector<float> results[2];  // plain launches, then the replay
    for (int replay = 0; replay < 2; ++replay) {
      MLA_ASSERT_OK(d_out.CopyFromHost(out0));
      MLA_ASSERT_OK(d_act.Fill(0xff));
      MLA_ASSERT_OK(d_y.Fill(0xff));
      if (replay == 0) {
        MLA_ASSERT_OK(enqueue());
      } else {
        MLA_ASSERT_OK(CudaStatus(cudaGraphLaunch(exec, stream), "graph launch"));
      }
      MLA_ASSERT_OK(CudaStatus(cudaStreamSynchronize(stream), "sync"));
      MLA_ASSERT_OK_AND_ASSIGN(results[replay], d_out.ToHost());
    }
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(),
                             results[0].size() * sizeof(float)))
        << "the replay differs from plain launches";
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// Argument checks run on the host before any launch: no GPU needed.
TEST(GpuMoeGrouped, RejectsBadArguments) {
  const int32_t offsets[1] = {0};  // never dereferenced: each call below fails validation
  MoeGroupedWeights w{.num_experts = 8, .hidden = 100, .width = 64};
  absl::Status s = MoeGroupedGateUp(nullptr, offsets, nullptr, 2, 16, w, nullptr, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "MoeGroupedGateUp: w.hidden must be a positive multiple of 8, got 100");
  w.hidden = 256;
  w.num_experts = 0;
  s = MoeGroupedDown(nullptr, offsets, 16, w, nullptr, nullptr);
  EXPECT_EQ(s.message(), "MoeGroupedDown: w.num_experts must be in [1, 1024], got 0");
  w.num_experts = 8;
  s = MoeGroupedDown(nullptr, offsets, 16, w, nullptr, nullptr);
  EXPECT_EQ(s.message(), "MoeGroupedDown: act must not be null");
  s = MoeGroupedGateUp(nullptr, offsets, nullptr, 0, 16, w, nullptr, nullptr);
  EXPECT_EQ(s.message(), "MoeGroupedGateUp: top_k must be >= 1, got 0");
  alignas(16) const unsigned char bytes[32] = {};
  s = MoeGroupedGateUp(reinterpret_cast<const float*>(bytes + 4), offsets, offsets, 2, 16, w,
                       nullptr, nullptr);
  EXPECT_EQ(s.message(), "MoeGroupedGateUp: x must be 16-byte aligned");
  s = MoeCombineRange(nullptr, nullptr, offsets, nullptr, nullptr, 8, 1, 8, 16, nullptr, nullptr,
                      nullptr);
  EXPECT_EQ(s.message(), "MoeCombineRange: end must not be null");
  s = MoeCombineRange(nullptr, nullptr, offsets, offsets, nullptr, 9, 1, 8, 16, nullptr, nullptr,
                      nullptr);
  EXPECT_EQ(s.message(), "MoeCombineRange: max_count must be <= tokens * top_k = 8, got 9");
}

}  // namespace
}  // namespace mla::kernels::cuda
