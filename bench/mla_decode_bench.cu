// mla_decode_bench: times cuda::MlaDecodeAttention (plan + split-KV kernel + combine) on decode
// steps of B sequences x L cached tokens x H = 128 heads (one query row each), DeepSeek-V3 dims.
//
// Method (docs/GPU.md, /work/shared/design/GPU.md "Timing"): random bf16 cache and fp32 queries
// (never zeros); several copies of the inputs, rotated per call, so that the copies together
// exceed the 50 MB L2 and no call finds its cache in L2; warm-up, then CUDA events around each
// call; the median of --iters calls. Floors: bytes = B*L*576*2 at 3.0 TB/s, FLOPs =
// 2*B*H*L*(576+512) at 738 TFLOP/s (the H100 ceilings measured in GPU.md).
// Output: a human line per case, and a machine line "RESULT <B> <L> <H> <median_ms> <splits>"
// that bench/mla_decode_torch.py reads to print the comparison with PyTorch.
//
// Usage: mla_decode_bench [--cases=64x4096,128x8192,1x32768] [--heads=128] [--iters=50]
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

absl::Status RunCase(int64_t batch, int64_t context, int64_t heads, int iters, int num_sms) {
  const int64_t blocks_per_seq = (context + kBlockSize - 1) / kBlockSize;
  const double cache_bytes = static_cast<double>(batch) * context * kDCache * 2;
  const int copies = static_cast<int>(std::max(2.0, std::ceil(kL2RotationBytes / cache_bytes)));
  const int64_t num_blocks = copies * batch * blocks_per_seq;

  auto cache = DeviceBuffer<bf16>::Allocate(num_blocks * kBlockSize * kDCache);
  auto q_abs = DeviceBuffer<float>::Allocate(copies * batch * heads * kDCache);
  auto out = DeviceBuffer<float>::Allocate(batch * heads * kDLatent);
  auto lse = DeviceBuffer<float>::Allocate(batch * heads);
  BENCH_CHECK(cache.status());
  BENCH_CHECK(q_abs.status());
  BENCH_CHECK(out.status());
  BENCH_CHECK(lse.status());
  FillBf16<<<4096, 256>>>(cache->get(), cache->count(), 1);
  FillFloat<<<4096, 256>>>(q_abs->get(), q_abs->count(), 2);
  BENCH_CHECK(LaunchStatus("fill"));

  // Copy c: sequences own consecutive blocks of the c-th slice of the pool.
  std::vector<int32_t> q_start(batch + 1), context_lens(batch, static_cast<int32_t>(context));
  for (int64_t s = 0; s <= batch; ++s) q_start[s] = static_cast<int32_t>(s);
  std::vector<DeviceBuffer<int32_t>> tables;
  for (int c = 0; c < copies; ++c) {
    std::vector<int32_t> table(batch * blocks_per_seq);
    for (int64_t i = 0; i < batch * blocks_per_seq; ++i) {
      table[i] = static_cast<int32_t>(c * batch * blocks_per_seq + i);
    }
    auto t = DeviceBuffer<int32_t>::FromHost(table);
    BENCH_CHECK(t.status());
    tables.push_back(std::move(*t));
  }
  auto d_q_start = DeviceBuffer<int32_t>::FromHost(q_start);
  auto d_lens = DeviceBuffer<int32_t>::FromHost(context_lens);
  BENCH_CHECK(d_q_start.status());
  BENCH_CHECK(d_lens.status());

  const MlaDecodePlan plan = PlanMlaDecode(batch, heads, context, num_sms);
  auto workspace = DeviceBuffer<unsigned char>::Allocate(plan.workspace_bytes);
  BENCH_CHECK(workspace.status());

  MlaDecodeParams params;
  params.dims = {.heads = heads, .d_latent = kDLatent, .d_rope = kDRope, .d_nope = 128, .d_v = 128};
  params.batch = {.num_seqs = batch, .q_start = d_q_start->get(), .context_lens = d_lens->get(),
                  .block_tables = nullptr, .max_blocks_per_seq = blocks_per_seq};
  params.cache = {.data = cache->get(), .num_blocks = num_blocks, .d_latent = kDLatent,
                  .d_rope = kDRope};
  params.softmax_scale = 0.1352337789f;
  params.out_latent = out->get();
  params.lse = lse->get();
  auto select = [&](int c) {
    params.batch.block_tables = tables[c].get();
    params.q_abs = q_abs->get() + c * batch * heads * kDCache;
  };

  cudaEvent_t start, stop;
  BENCH_CHECK(CudaStatus(cudaEventCreate(&start), "event"));
  BENCH_CHECK(CudaStatus(cudaEventCreate(&stop), "event"));
  for (int i = 0; i < 5; ++i) {  // warm-up
    select(i % copies);
    BENCH_CHECK(MlaDecodeAttention(params, plan, workspace->get(), nullptr));
  }
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) {
    select(i % copies);
    BENCH_CHECK(CudaStatus(cudaEventRecord(start), "record"));
    BENCH_CHECK(MlaDecodeAttention(params, plan, workspace->get(), nullptr));
    BENCH_CHECK(CudaStatus(cudaEventRecord(stop), "record"));
    BENCH_CHECK(CudaStatus(cudaEventSynchronize(stop), "sync"));
    BENCH_CHECK(CudaStatus(cudaEventElapsedTime(&ms[i], start, stop), "elapsed"));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::vector<float> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[iters / 2];
  const double flops = 2.0 * batch * heads * context * (kDCache + kDLatent);
  const double floor_ms = 1e3 * std::max(cache_bytes / kPeakBytesPerS, flops / kPeakFlops);
  std::printf("B=%lld L=%lld H=%lld: %lld splits of %lld keys, %d input copies; median %.4f ms "
              "(min %.4f, max %.4f) = %.2f TB/s, %.0f TFLOP/s; floor %.4f ms (%.0f%%)\n",
              static_cast<long long>(batch), static_cast<long long>(context),
              static_cast<long long>(heads), static_cast<long long>(plan.num_splits),
              static_cast<long long>(plan.keys_per_split), copies, median, sorted.front(),
              sorted.back(), cache_bytes / (median * 1e-3) / 1e12, flops / (median * 1e-3) / 1e12,
              floor_ms, 100.0 * floor_ms / median);
  std::printf("RESULT %lld %lld %lld %.5f %lld\n", static_cast<long long>(batch),
              static_cast<long long>(context), static_cast<long long>(heads), median,
              static_cast<long long>(plan.num_splits));
  return absl::OkStatus();
}

}  // namespace
}  // namespace mla::kernels::cuda

int main(int argc, char** argv) {
  std::string cases = "64x4096,128x8192,1x32768";
  int64_t heads = 128;
  int iters = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--cases=", 0) == 0) cases = arg.substr(8);
    else if (arg.rfind("--heads=", 0) == 0) heads = std::atoll(arg.c_str() + 8);
    else if (arg.rfind("--iters=", 0) == 0) iters = std::atoi(arg.c_str() + 8);
    else { std::fprintf(stderr, "unknown argument %s\n", arg.c_str()); return 2; }
  }
  int device = 0, sms = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  sms = prop.multiProcessorCount;
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, sms, prop.l2CacheSize >> 20);
  size_t pos = 0;
  while (pos < cases.size()) {
    size_t comma = cases.find(',', pos);
    if (comma == std::string::npos) comma = cases.size();
    const std::string one = cases.substr(pos, comma - pos);
    const size_t x = one.find('x');
    const int64_t batch = std::atoll(one.substr(0, x).c_str());
    const int64_t context = std::atoll(one.substr(x + 1).c_str());
    if (!mla::kernels::cuda::RunCase(batch, context, heads, iters, sms).ok()) return 1;
    pos = comma + 1;
  }
  return 0;
}
