// mla_ops_bench's shared pieces: what a benchmark case is, the random fills, and the builders of
// each op family (ops_bench_elementwise.cc, ops_bench_gemm.cc, ops_bench_moe.cc). The timing
// harness and main are in ops_bench.cc (the method is documented there), the fills in
// ops_bench_fill.cu.
//
// A case is one op at one shape, named "<op>@<T>" (T = tokens in the step: 64 for a decode
// batch, 4096 for a prefill chunk). Its builder allocates `copies` independent sets of the op's
// tensors (inputs and outputs; large shared tables such as the embedding are allocated once and
// say so), fills the inputs with random values (never zeros), and returns a closure that
// enqueues the op on set `copy` without allocating or synchronising (so it can be captured in a
// CUDA graph after one uncaptured call). `bytes` is what the floor counts: the op's tensors read
// plus written, once each (workspaces excluded); `flops` counts tensor-core work only (GEMMs and
// attention, a multiply-add = 2); elementwise ops report 0 and are bounded by bytes.
// bench/ops_torch.py holds the same shapes and byte counts and checks them against ours.
#ifndef MLASERVE_BENCH_OPS_BENCH_H_
#define MLASERVE_BENCH_OPS_BENCH_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/bf16.h"
#include "kernels/cuda/device_buffer.h"

namespace mla::kernels::cuda::bench {

// DeepSeek-V3 shapes (MODEL.md §1.1), tp = 1.
inline constexpr int64_t kHidden = 7168, kQLora = 1536, kKvLora = 512, kRope = 64, kNope = 128;
inline constexpr int64_t kVHead = 128, kHeads = 128, kVocab = 129280, kInter = 18432;
inline constexpr int64_t kMoeInter = 2048, kExperts = 256, kTopK = 8;
inline constexpr double kL2RotationBytes = 200e6;  // 4x the H100's 50 MB L2 (as mla_decode_bench)
inline constexpr int kMaxCopies = 128;             // bound on the graphs per case

// Copies of `bytes_per_copy` rotated per call so that together they exceed kL2RotationBytes:
// ceil(200 MB / bytes), at least 2, at most kMaxCopies (ops under 1.6 MB stay partly in L2; they
// are launch-bound anyway).
int CopiesFor(double bytes_per_copy);

struct Prepared {
  std::string shape;  // human-readable, no spaces: "[64,7168]x[1536,7168]"
  double bytes = 0;   // floor bytes: tensors read + written once
  double flops = 0;   // tensor-core FLOPs (0 for elementwise ops)
  int copies = 2;
  std::function<absl::Status(int copy, cudaStream_t stream)> run;  // owns its buffers
};

// Builds the case for T tokens; INVALID_ARGUMENT for a T the op is not benchmarked at.
using Builder = absl::StatusOr<Prepared> (*)(int64_t tokens);

// "[a,b,...]": the dims of a shape string.
template <typename... Int>
std::string Dims(Int... d) {
  std::string s = "[";
  ((s += std::to_string(static_cast<long long>(d)) + ","), ...);
  s.back() = ']';
  return s;
}

// Uniform values in [-1, 1) (bf16: rounded to nearest even), from a hash of (index, seed).
absl::Status FillUniform(float* p, int64_t n, uint32_t seed);
absl::Status FillUniform(bf16* p, int64_t n, uint32_t seed);

#define OPS_RETURN_IF_ERROR(expr)                \
  do {                                           \
    const absl::Status ops_status_ = (expr);     \
    if (!ops_status_.ok()) return ops_status_;   \
  } while (false)

// b = n uninitialised elements of device memory.
template <typename T>
absl::Status Alloc(DeviceBuffer<T>& b, int64_t n) {
  absl::StatusOr<DeviceBuffer<T>> r = DeviceBuffer<T>::Allocate(n);
  if (!r.ok()) return r.status();
  b = std::move(*r);
  return absl::OkStatus();
}
// b = n elements filled by FillUniform (T = float or bf16).
template <typename T>
absl::Status AllocRandom(DeviceBuffer<T>& b, int64_t n, uint32_t seed) {
  OPS_RETURN_IF_ERROR(Alloc(b, n));
  return FillUniform(b.get(), n, seed);
}
// b = a device copy of host.
template <typename T>
absl::Status Upload(DeviceBuffer<T>& b, const std::vector<T>& host) {
  absl::StatusOr<DeviceBuffer<T>> r = DeviceBuffer<T>::FromHost(host);
  if (!r.ok()) return r.status();
  b = std::move(*r);
  return absl::OkStatus();
}

// Elementwise family (ops_bench_elementwise.cc).
absl::StatusOr<Prepared> BuildRmsNorm(int64_t tokens);
absl::StatusOr<Prepared> BuildAddRmsNorm(int64_t tokens);
absl::StatusOr<Prepared> BuildRopeQ(int64_t tokens);
absl::StatusOr<Prepared> BuildSiluMul(int64_t tokens);
absl::StatusOr<Prepared> BuildEmbed(int64_t tokens);
absl::StatusOr<Prepared> BuildWriteLatentCache(int64_t tokens);
// Positions of the step's tokens: T = 64 is a decode batch (one token of each of 64 sequences,
// position (t * 997) % 32768), otherwise one prefill sequence (position t). ops_torch.py's twin.
std::vector<int32_t> StepPositions(int64_t tokens);

// GEMM family (ops_bench_gemm.cc): Linear through cuBLASLt, the absorb projections, prefill.
absl::StatusOr<Prepared> BuildLinearQA(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearQB(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearKvA(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearOProj(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearMlpGateUp(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearMlpDown(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearExpertGate(int64_t tokens);
absl::StatusOr<Prepared> BuildLinearLmHead(int64_t tokens);
absl::StatusOr<Prepared> BuildAbsorbQuery(int64_t tokens);
absl::StatusOr<Prepared> BuildUnabsorbOutput(int64_t tokens);
absl::StatusOr<Prepared> BuildPrefillAttention(int64_t tokens);

// MoE and sampling family (ops_bench_moe.cc).
absl::StatusOr<Prepared> BuildMoeGate(int64_t tokens);
absl::StatusOr<Prepared> BuildMoeDispatch(int64_t tokens);
absl::StatusOr<Prepared> BuildMoeCombine(int64_t tokens);
absl::StatusOr<Prepared> BuildMoeGroupedGateUp(int64_t tokens);
absl::StatusOr<Prepared> BuildMoeGroupedDown(int64_t tokens);
absl::StatusOr<Prepared> BuildSampleGreedy(int64_t tokens);
absl::StatusOr<Prepared> BuildSampleTopP(int64_t tokens);

}  // namespace mla::kernels::cuda::bench

#endif  // MLASERVE_BENCH_OPS_BENCH_H_
