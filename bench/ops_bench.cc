// mla_ops_bench: per-op timings of the CUDA backend at DeepSeek-V3 shapes (tp = 1, one GPU),
// for bench/ops_torch.py, which runs PyTorch on the same shapes in the same invocation and prints
// the table (op, shape, ours, PyTorch, floor, ratios). MLA decode attention is not here: it has
// its own benchmark (mla_decode_bench.cu).
//
// Cases are "<op>@<T>" (ops_bench.h; the list is kCases below, `--list` prints it). Method, as
// mla_decode_bench.cu (docs/GPU.md, /work/shared/design/GPU.md "Timing"): random inputs (never
// zeros); `copies` independent sets of the op's tensors rotated per call so that together they
// exceed the 50 MB L2 (ops_bench.h: CopiesFor); warm-up calls (which also fill the cuBLASLt plan
// caches); the median of single eager calls (events around each: host launch overhead included);
// then each copy's call captured in a CUDA graph, CUDA events around `replays` back-to-back
// replays (rotating copies), median over `iters` such groups: that median is "ours". Slow ops
// run fewer replays and groups (at most ~3 s of timing per case; the iterations used are
// printed). Floor = max(bytes / 3.0 TB/s, flops / 738 TFLOP/s), the H100 ceilings measured in
// GPU.md and used by mla_decode_bench; bytes and flops per case are stated in the builders.
// Output: a human line per case, and a machine line
//   RESULT <case> <shape> <median_ms> <eager_median_ms> <bytes> <flops>
// (a failed case prints "FAILED <case> <message>" and the exit status is 1).
//
// Usage: mla_ops_bench [--cases=rms_norm@64,linear_q_a@4096,...] [--iters=50] [--list]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/ops_bench.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda::bench {
namespace {

constexpr double kPeakBytesPerS = 3.0e12;  // measured device-to-device copy, GPU.md
constexpr double kPeakFlops = 738e12;      // measured bf16 matmul, GPU.md
constexpr double kBudgetMs = 3000;         // timing budget per case (replays included)

struct CaseDef {
  const char* op;
  int64_t tokens;
  Builder build;
};

// Every case: T = 64 (decode batch) and T = 4096 (prefill chunk) where it makes sense.
const CaseDef kCases[] = {
    {"rms_norm", 64, BuildRmsNorm},             {"rms_norm", 4096, BuildRmsNorm},
    {"add_rms_norm", 64, BuildAddRmsNorm},      {"add_rms_norm", 4096, BuildAddRmsNorm},
    {"linear_q_a", 64, BuildLinearQA},          {"linear_q_a", 4096, BuildLinearQA},
    {"linear_q_b", 64, BuildLinearQB},          {"linear_q_b", 4096, BuildLinearQB},
    {"linear_kv_a", 64, BuildLinearKvA},        {"linear_kv_a", 4096, BuildLinearKvA},
    {"linear_o_proj", 64, BuildLinearOProj},    {"linear_o_proj", 4096, BuildLinearOProj},
    {"linear_mlp_gate_up", 64, BuildLinearMlpGateUp},
    {"linear_mlp_gate_up", 4096, BuildLinearMlpGateUp},
    {"linear_mlp_down", 64, BuildLinearMlpDown}, {"linear_mlp_down", 4096, BuildLinearMlpDown},
    {"linear_expert_gate", 64, BuildLinearExpertGate},
    {"linear_expert_gate", 4096, BuildLinearExpertGate},
    {"linear_lm_head", 64, BuildLinearLmHead},
    {"rope_q", 64, BuildRopeQ},                 {"rope_q", 4096, BuildRopeQ},
    {"silu_mul", 64, BuildSiluMul},             {"silu_mul", 4096, BuildSiluMul},
    {"embed", 64, BuildEmbed},                  {"embed", 4096, BuildEmbed},
    {"write_latent_cache", 64, BuildWriteLatentCache},
    {"write_latent_cache", 4096, BuildWriteLatentCache},
    {"absorb_query", 64, BuildAbsorbQuery},     {"unabsorb_output", 64, BuildUnabsorbOutput},
    {"moe_gate", 64, BuildMoeGate},             {"moe_gate", 4096, BuildMoeGate},
    {"moe_dispatch", 64, BuildMoeDispatch},     {"moe_dispatch", 4096, BuildMoeDispatch},
    {"moe_combine", 64, BuildMoeCombine},       {"moe_combine", 4096, BuildMoeCombine},
    {"moe_grouped_gate_up", 64, BuildMoeGroupedGateUp},
    {"moe_grouped_down", 64, BuildMoeGroupedDown},
    {"sample_greedy", 64, BuildSampleGreedy},   {"sample_top_p", 64, BuildSampleTopP},
    {"prefill_attention", 4096, BuildPrefillAttention},
};

std::string CaseName(const CaseDef& c) {
  return std::string(c.op) + "@" + std::to_string(c.tokens);
}

// "op@T" -> its definition; any T is accepted for a known op (e.g. prefill_attention@2048).
bool FindCase(const std::string& name, CaseDef& out) {
  const size_t at = name.find('@');
  if (at == std::string::npos) return false;
  const std::string op = name.substr(0, at);
  const int64_t tokens = std::atoll(name.c_str() + at + 1);
  for (const CaseDef& c : kCases) {
    if (op == c.op && tokens > 0) {
      out = {c.op, tokens, c.build};
      return true;
    }
  }
  return false;
}

float Median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

absl::Status TimeCase(const std::string& name, Prepared& p, int max_iters, cudaStream_t stream) {
  cudaEvent_t start, stop;
  OPS_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&start), "event"));
  OPS_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&stop), "event"));
  auto elapsed = [&](float& ms) -> absl::Status {
    OPS_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(stop), "sync"));
    return CudaStatus(cudaEventElapsedTime(&ms, start, stop), "elapsed");
  };
  // Warm-up: every copy once (fills plan caches), then 3 timed calls estimate the op's cost.
  for (int k = 0; k < p.copies; ++k) OPS_RETURN_IF_ERROR(p.run(k, stream));
  OPS_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "warm-up"));
  float estimate = 0;
  for (int i = 0; i < 3; ++i) {
    OPS_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(start, stream), "record"));
    OPS_RETURN_IF_ERROR(p.run(i % p.copies, stream));
    OPS_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(stop, stream), "record"));
    float ms = 0;
    OPS_RETURN_IF_ERROR(elapsed(ms));
    estimate = i == 0 ? ms : std::min(estimate, ms);
  }
  const int replays = estimate >= 1.0f ? 1 : 10;
  const int iters = std::clamp(static_cast<int>(kBudgetMs / (std::max(estimate, 1e-3f) *
                                                              (replays + 1))), 5, max_iters);
  std::vector<float> eager(iters);
  for (int i = 0; i < iters; ++i) {
    OPS_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(start, stream), "record"));
    OPS_RETURN_IF_ERROR(p.run(i % p.copies, stream));
    OPS_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(stop, stream), "record"));
    OPS_RETURN_IF_ERROR(elapsed(eager[i]));
  }
  std::vector<cudaGraphExec_t> graphs(p.copies, nullptr);
  absl::Status status = absl::OkStatus();
  for (int k = 0; k < p.copies && status.ok(); ++k) {
    cudaGraph_t graph = nullptr;
    status = CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
                        "capture");
    if (!status.ok()) break;
    const absl::Status launched = p.run(k, stream);
    status = CudaStatus(cudaStreamEndCapture(stream, &graph), "end capture");
    if (status.ok()) status = launched;
    if (status.ok()) status = CudaStatus(cudaGraphInstantiate(&graphs[k], graph, 0), "instantiate");
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (status.ok()) status = CudaStatus(cudaGraphLaunch(graphs[k], stream), "warm-up replay");
  }
  std::vector<float> ms(iters);
  for (int i = 0; i < iters && status.ok(); ++i) {
    status = CudaStatus(cudaEventRecord(start, stream), "record");
    for (int r = 0; r < replays && status.ok(); ++r) {
      status = CudaStatus(cudaGraphLaunch(graphs[(i * replays + r) % p.copies], stream), "replay");
    }
    if (status.ok()) status = CudaStatus(cudaEventRecord(stop, stream), "record");
    if (status.ok()) status = elapsed(ms[i]);
    ms[i] /= replays;
  }
  for (cudaGraphExec_t g : graphs) {
    if (g != nullptr) cudaGraphExecDestroy(g);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  OPS_RETURN_IF_ERROR(status);

  const double median = Median(ms), eager_median = Median(eager);
  const double floor_ms = 1e3 * std::max(p.bytes / kPeakBytesPerS, p.flops / kPeakFlops);
  std::printf("%s %s: graph replay median %.4f ms (min %.4f, %d x %d replays, %d copies) = "
              "%.2f TB/s, %.1f TFLOP/s; floor %.4f ms (%.0f%%); eager call median %.4f ms\n",
              name.c_str(), p.shape.c_str(), median, *std::min_element(ms.begin(), ms.end()),
              iters, replays, p.copies, p.bytes / (median * 1e-3) / 1e12,
              p.flops / (median * 1e-3) / 1e12, floor_ms, 100.0 * floor_ms / median, eager_median);
  std::printf("RESULT %s %s %.5f %.5f %.0f %.0f\n", name.c_str(), p.shape.c_str(), median,
              eager_median, p.bytes, p.flops);
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace

int CopiesFor(double bytes_per_copy) {
  const double n = std::ceil(kL2RotationBytes / std::max(bytes_per_copy, 1.0));
  return static_cast<int>(std::clamp(n, 2.0, static_cast<double>(kMaxCopies)));
}

int Main(int argc, char** argv) {
  std::string cases;
  int iters = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--cases=", 0) == 0) {
      cases = arg.substr(8);
    } else if (arg.rfind("--iters=", 0) == 0) {
      iters = std::max(5, std::atoi(arg.c_str() + 8));
    } else if (arg == "--list") {
      for (const CaseDef& c : kCases) std::printf("%s\n", CaseName(c).c_str());
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  std::vector<CaseDef> selected;
  if (cases.empty()) {
    selected.assign(std::begin(kCases), std::end(kCases));
  } else {
    size_t pos = 0;
    while (pos < cases.size()) {
      size_t comma = cases.find(',', pos);
      if (comma == std::string::npos) comma = cases.size();
      CaseDef c{};
      if (!FindCase(cases.substr(pos, comma - pos), c)) {
        std::fprintf(stderr, "bad case %s (--list prints them)\n",
                     cases.substr(pos, comma - pos).c_str());
        return 2;
      }
      selected.push_back(c);
      pos = comma + 1;
    }
  }
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
    std::fprintf(stderr, "cudaStreamCreate failed\n");
    return 1;
  }
  int failed = 0;
  for (const CaseDef& c : selected) {
    const std::string name = CaseName(c);
    absl::Status status;
    {
      absl::StatusOr<Prepared> prepared = c.build(c.tokens);  // freed at the end of the case
      status = prepared.ok() ? TimeCase(name, *prepared, iters, stream) : prepared.status();
      if (status.ok()) status = CudaStatus(cudaStreamSynchronize(stream), "case end");
    }
    if (!status.ok()) {
      std::printf("FAILED %s %s\n", name.c_str(), status.ToString().c_str());
      std::fflush(stdout);
      ++failed;
      cudaGetLastError();  // clear a non-sticky error so the next case can run
    }
  }
  cudaStreamDestroy(stream);
  return failed == 0 ? 0 : 1;
}

}  // namespace mla::kernels::cuda::bench

int main(int argc, char** argv) { return mla::kernels::cuda::bench::Main(argc, argv); }
