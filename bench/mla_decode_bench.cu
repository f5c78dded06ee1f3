// mla_decode_bench: times cuda::MlaDecodeAttention (plan + split-KV kernel + combine) on decode
// steps of DeepSeek-V3 shape (576-wide latent cache, 512-wide values).
//
// A case is B x L [h H] [q Q] [s S]: B sequences, L cached keys each (L written rL: lengths
// drawn uniformly from [1, L] by a fixed LCG that bench/mla_decode_torch.py repeats), H query
// heads (default 128), Q query rows per sequence (default 1; row i attends to keys
// 0 .. L - Q + i), and S: plan for S SMs instead of the device's count (a diagnostic).
// Method (docs/GPU.md, /work/shared/design/GPU.md "Timing"): random bf16 cache and fp32 queries
// (never zeros); several copies of the inputs, rotated per call, so that the copies together
// exceed the 50 MB L2 and no call finds its cache in L2; each copy's call captured in a CUDA
// graph (as a decode step runs in serving; plan excluded: it runs once per step on the host,
// then every layer reuses it); CUDA events around 10 back-to-back replays (rotating copies),
// median over --iters such groups. The median of single eager calls (host launch overhead
// included) is printed too, and the graph replay median of a fixed launch (mla_decode.h: the
// grid and workspace of MlaDecodeBoundsFor(the case's rows, H), the combine always launched),
// the form a decode step captured once and replayed for every step takes.
// The plan's device copy (DevicePlanOf) is uploaded once per case, before the timing. Floors: bytes = (sum of L) * 576 * 2 at 3.0 TB/s; FLOPs =
// 2 * H * (576 + 512) * (sum over query rows of the keys they attend to) at 738 TFLOP/s (the
// H100 ceilings measured in GPU.md); the floor is the larger.
// Output: a human line per case, and a machine line
//   RESULT <case> <median_ms> <lanes> <cut_rows> <bytes> <flops>
// that bench/mla_decode_torch.py reads to print the comparison with PyTorch.
//
// Usage: mla_decode_bench [--cases=64x4096,128x8192,1x32768,...] [--iters=50]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {
namespace {

constexpr int64_t kDLatent = 512, kDRope = 64, kDCache = kDLatent + kDRope;
constexpr double kL2RotationBytes = 200e6;  // 4x the H100's 50 MB L2
constexpr double kPeakBytesPerS = 3.0e12;    // measured device-to-device copy, GPU.md
constexpr double kPeakFlops = 738e12;        // measured bf16 matmul, GPU.md

struct Case {
  std::string name;
  int64_t batch = 0;
  int64_t context = 0;     // L, or the upper bound of the random lengths
  bool random = false;
  int64_t heads = 128;
  int64_t q_len = 1;
  int plan_sms = 0;        // 0: the device's SM count
};

// "64x4096", "64xr8192", "128x4096h64", "64x4096q2".
bool ParseCase(const std::string& s, Case& c) {
  c.name = s;
  const size_t x = s.find('x');
  if (x == std::string::npos) return false;
  c.batch = std::atoll(s.substr(0, x).c_str());
  size_t i = x + 1;
  if (i < s.size() && s[i] == 'r') {
    c.random = true;
    ++i;
  }
  c.context = std::atoll(s.c_str() + i);
  for (size_t j = i; j < s.size(); ++j) {
    if (s[j] == 'h') c.heads = std::atoll(s.c_str() + j + 1);
    if (s[j] == 'q') c.q_len = std::atoll(s.c_str() + j + 1);
    if (s[j] == 's') c.plan_sms = std::atoi(s.c_str() + j + 1);
  }
  return c.batch > 0 && c.context >= c.q_len && c.heads > 0 && c.q_len > 0;
}

// Context lengths of the case: L each, or 1 + (LCG state % L) (mla_decode_torch.py's twin).
std::vector<int32_t> ContextLengths(const Case& c) {
  std::vector<int32_t> lens(c.batch, static_cast<int32_t>(c.context));
  if (!c.random) return lens;
  uint64_t state = 12345;
  for (int32_t& len : lens) {
    state = (state * 1103515245ull + 12345ull) % 2147483648ull;
    len = static_cast<int32_t>(std::max<int64_t>(c.q_len, 1 + static_cast<int64_t>(state % c.context)));
  }
  return lens;
}

// Uniform values in [-1, 1) from a hash of (index, seed): fast device-side random fill.
__device__ float HashUniform(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + seed;
  x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 29; x *= 0x94d049bb133111ebull; x ^= x >> 32;
  return static_cast<float>(x & 0xffffff) / static_cast<float>(1 << 23) - 1.0f;
}
__global__ void FillBf16(bf16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float f = HashUniform(i, seed);
    const uint32_t u = __float_as_uint(f);  // round to nearest even, as FloatToBf16
    p[i].bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}
__global__ void FillFloat(float* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = HashUniform(i, seed);
  }
}

#define BENCH_CHECK(expr)                                                     \
  do {                                                                        \
    const absl::Status s_ = (expr);                                           \
    if (!s_.ok()) {                                                           \
      std::fprintf(stderr, "%s failed: %s\n", #expr, s_.ToString().c_str()); \
      return s_;                                                              \
    }                                                                         \
  } while (false)

absl::Status RunCase(const Case& c, int iters, int num_sms) {
  const std::vector<int32_t> lens = ContextLengths(c);
  std::vector<int32_t> q_start = {0};
  int64_t total_keys = 0, attended = 0, blocks = 0, max_blocks = 0;
  for (const int32_t len : lens) {
    q_start.push_back(q_start.back() + static_cast<int32_t>(c.q_len));
    total_keys += len;
    for (int64_t i = 0; i < c.q_len; ++i) attended += len - c.q_len + i + 1;
    const int64_t b = (len + kBlockSize - 1) / kBlockSize;
    blocks += b;
    max_blocks = std::max(max_blocks, b);
  }
  const int64_t tokens = q_start.back();
  const double cache_bytes = static_cast<double>(total_keys) * kDCache * 2;
  const double flops = 2.0 * c.heads * attended * (kDCache + kDLatent);
  const int copies = static_cast<int>(std::max(2.0, std::ceil(kL2RotationBytes / cache_bytes)));
  const int64_t num_blocks = copies * blocks;

  auto cache = DeviceBuffer<bf16>::Allocate(num_blocks * kBlockSize * kDCache);
  auto q_abs = DeviceBuffer<float>::Allocate(copies * tokens * c.heads * kDCache);
  auto out = DeviceBuffer<float>::Allocate(tokens * c.heads * kDLatent);
  auto lse = DeviceBuffer<float>::Allocate(tokens * c.heads);
  BENCH_CHECK(cache.status());
  BENCH_CHECK(q_abs.status());
  BENCH_CHECK(out.status());
  BENCH_CHECK(lse.status());
  FillBf16<<<4096, 256>>>(cache->get(), cache->count(), 1);
  FillFloat<<<4096, 256>>>(q_abs->get(), q_abs->count(), 2);
  BENCH_CHECK(LaunchStatus("fill"));

  // Copy k: sequences own consecutive blocks of the k-th slice of the pool.
  std::vector<DeviceBuffer<int32_t>> tables;
  for (int k = 0; k < copies; ++k) {
    std::vector<int32_t> table(c.batch * max_blocks, 0);
    int64_t next = k * blocks;
    for (int64_t s = 0; s < c.batch; ++s) {
      for (int64_t b = 0; b * kBlockSize < lens[s]; ++b) table[s * max_blocks + b] = static_cast<int32_t>(next++);
    }
    auto t = DeviceBuffer<int32_t>::FromHost(table);
    BENCH_CHECK(t.status());
    tables.push_back(std::move(*t));
  }
  auto d_q_start = DeviceBuffer<int32_t>::FromHost(q_start);
  auto d_lens = DeviceBuffer<int32_t>::FromHost(lens);
  BENCH_CHECK(d_q_start.status());
  BENCH_CHECK(d_lens.status());

  const MlaDecodePlan plan = PlanMlaDecode(q_start, lens, c.heads, c.plan_sms > 0 ? c.plan_sms : num_sms);
  const MlaDecodeLaunchBounds bounds = MlaDecodeBoundsFor(tokens, c.heads);
  auto workspace = DeviceBuffer<unsigned char>::Allocate(bounds.workspace_bytes);
  auto device_plan = DeviceBuffer<MlaDecodeDevicePlan>::FromHost({DevicePlanOf(plan)});
  BENCH_CHECK(workspace.status());
  BENCH_CHECK(device_plan.status());
  const MlaDecodeLaunch plain{.device_plan = device_plan->get(),
                              .workspace = workspace->get(),
                              .workspace_bytes = bounds.workspace_bytes};
  MlaDecodeLaunch fixed = plain;
  fixed.grid_lanes = bounds.grid_lanes;

  MlaDecodeParams params;
  params.dims = {.heads = c.heads, .d_latent = kDLatent, .d_rope = kDRope, .d_nope = 128, .d_v = 128};
  params.batch = {.num_seqs = c.batch, .q_start = d_q_start->get(), .context_lens = d_lens->get(),
                  .block_tables = nullptr, .max_blocks_per_seq = max_blocks};
  params.cache = {.data = cache->get(), .num_blocks = num_blocks, .d_latent = kDLatent,
                  .d_rope = kDRope};
  params.softmax_scale = 0.1352337789f;
  params.out_latent = out->get();
  params.lse = lse->get();
  auto select = [&](int k) {
    params.batch.block_tables = tables[k].get();
    params.q_abs = q_abs->get() + k * tokens * c.heads * kDCache;
  };

  cudaEvent_t start, stop;
  BENCH_CHECK(CudaStatus(cudaEventCreate(&start), "event"));
  BENCH_CHECK(CudaStatus(cudaEventCreate(&stop), "event"));
  for (int i = 0; i < 5; ++i) {  // warm-up
    select(i % copies);
    BENCH_CHECK(MlaDecodeAttention(params, plan, plain, nullptr));
  }
  std::vector<float> eager(iters);
  for (int i = 0; i < iters; ++i) {
    select(i % copies);
    BENCH_CHECK(CudaStatus(cudaEventRecord(start), "record"));
    BENCH_CHECK(MlaDecodeAttention(params, plan, plain, nullptr));
    BENCH_CHECK(CudaStatus(cudaEventRecord(stop), "record"));
    BENCH_CHECK(CudaStatus(cudaEventSynchronize(stop), "sync"));
    BENCH_CHECK(CudaStatus(cudaEventElapsedTime(&eager[i], start, stop), "elapsed"));
  }

  // One graph per input copy; groups of kReplays back-to-back replays between two events.
  constexpr int kReplays = 10;
  cudaStream_t stream = nullptr;
  BENCH_CHECK(CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"));
  // Sorted per-call times of graph replays of `launch`.
  auto time_graphs = [&](const MlaDecodeLaunch& launch, std::vector<float>& ms) -> absl::Status {
    std::vector<cudaGraphExec_t> graphs(copies, nullptr);
    absl::Status status;
    for (int k = 0; k < copies && status.ok(); ++k) {
      select(k);
      cudaGraph_t graph = nullptr;
      BENCH_CHECK(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture"));
      const absl::Status launched = MlaDecodeAttention(params, plan, launch, stream);
      BENCH_CHECK(CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture"));
      status.Update(launched);
      if (status.ok()) status.Update(CudaStatus(cudaGraphInstantiate(&graphs[k], graph, 0), "instantiate"));
      cudaGraphDestroy(graph);
      if (status.ok()) status.Update(CudaStatus(cudaGraphLaunch(graphs[k], stream), "warm-up replay"));
    }
    ms.assign(iters, 0.0f);
    for (int i = 0; i < iters && status.ok(); ++i) {
      status.Update(CudaStatus(cudaEventRecord(start, stream), "record"));
      for (int r = 0; r < kReplays && status.ok(); ++r) {
        status.Update(CudaStatus(cudaGraphLaunch(graphs[(i * kReplays + r) % copies], stream), "replay"));
      }
      status.Update(CudaStatus(cudaEventRecord(stop, stream), "record"));
      status.Update(CudaStatus(cudaEventSynchronize(stop), "sync"));
      status.Update(CudaStatus(cudaEventElapsedTime(&ms[i], start, stop), "elapsed"));
      ms[i] /= kReplays;
    }
    for (cudaGraphExec_t g : graphs) {
      if (g != nullptr) cudaGraphExecDestroy(g);
    }
    std::sort(ms.begin(), ms.end());
    return status;
  };
  std::vector<float> sorted, fixed_ms;
  BENCH_CHECK(time_graphs(plain, sorted));
  BENCH_CHECK(time_graphs(fixed, fixed_ms));
  cudaStreamDestroy(stream);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(eager.begin(), eager.end());
  const double median = sorted[iters / 2];
  const double floor_ms = 1e3 * std::max(cache_bytes / kPeakBytesPerS, flops / kPeakFlops);
  std::printf("%s (B=%lld, %s L=%lld, H=%lld, %lld rows/seq): %d lanes%s, %d cut rows, %d copies; "
              "graph replay median %.4f ms (min %.4f, max %.4f) = %.2f TB/s, %.0f TFLOP/s; floor "
              "%.4f ms (%.0f%%); eager call median %.4f ms; fixed launch (%lld lanes) graph "
              "replay median %.4f ms\n",
              c.name.c_str(), static_cast<long long>(c.batch), c.random ? "random" : "",
              static_cast<long long>(c.context), static_cast<long long>(c.heads),
              static_cast<long long>(c.q_len), plan.schedule.num_lanes,
              plan.schedule.lanes_are_tokens ? " (one per row)" : "", plan.cuts.num_cuts, copies,
              median, sorted.front(), sorted.back(), cache_bytes / (median * 1e-3) / 1e12,
              flops / (median * 1e-3) / 1e12, floor_ms, 100.0 * floor_ms / median,
              eager[iters / 2], static_cast<long long>(bounds.grid_lanes), fixed_ms[iters / 2]);
  std::printf("RESULT %s %.5f %d %d %.0f %.0f\n", c.name.c_str(), median, plan.schedule.num_lanes,
              plan.cuts.num_cuts, cache_bytes, flops);
  return absl::OkStatus();
}

}  // namespace
}  // namespace mla::kernels::cuda

int main(int argc, char** argv) {
  std::string cases = "64x4096,128x8192,1x32768,64xr8192,128x4096h64,128x4096h32,128x4096h16,64x4096q2";
  int iters = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--cases=", 0) == 0) cases = arg.substr(8);
    else if (arg.rfind("--iters=", 0) == 0) iters = std::atoi(arg.c_str() + 8);
    else { std::fprintf(stderr, "unknown argument %s\n", arg.c_str()); return 2; }
  }
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  int failed = 0;
  size_t pos = 0;
  while (pos < cases.size()) {
    size_t comma = cases.find(',', pos);
    if (comma == std::string::npos) comma = cases.size();
    mla::kernels::cuda::Case c;
    if (!mla::kernels::cuda::ParseCase(cases.substr(pos, comma - pos), c)) {
      std::fprintf(stderr, "bad case %s\n", cases.substr(pos, comma - pos).c_str());
      return 2;
    }
    if (!mla::kernels::cuda::RunCase(c, iters, prop.multiProcessorCount).ok()) ++failed;
    pos = comma + 1;
  }
  return failed == 0 ? 0 : 1;
}
