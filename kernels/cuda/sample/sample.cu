// Sample on the GPU (twin of cpu::Sample; its steps 1-6 are documented in kernels/cpu/sample.cc).
// Per row b of logits [batch, vocab] f32, with params[b] and u = SampleUniformOf(seed, steps[b]):
//
//   greedy (T == 0):  token = argmax_i logits_i, lowest i on ties
//   else:             z_i = double(logit_i) / double(T),  m = max_i z_i,
//                     p_i = exp(z_i - m) / S,  S = sum_i exp(z_i - m)          (double)
//                     c_0, c_1, ... = ids by p descending, equal p by ascending id
//                     P_j = p_{c_0} + ... + p_{c_j};  n_k = min(top_k, vocab) or vocab
//                     n   = j + 1 for the first j < n_k with P_j >= top_p * P_{n_k - 1}, else n_k
//                     token = c_j for the first j < n with P_j > u * P_{n - 1}, else c_{n - 1}
//
// Launches: (1) SoftmaxKernel, a block per row: keys_in = p, ids_in = 0..vocab-1 (greedy rows
// write p = 0 so the sort reads defined data), and the segment offsets; (2) CUB's
// DeviceSegmentedRadixSort::SortPairsDescending over the rows: an LSD radix sort, stable, so
// equal p keep ascending id as the CPU orders them; (3) SelectKernel, a block per row: the
// greedy argmax, or the prefix sums P_j of the sorted p (each thread a contiguous chunk summed
// in order, chunks joined by a block-wide exclusive scan; written over keys_in, which the sort
// no longer needs) and two searches for the first index meeting a condition (block-wide min).
// All reductions have a fixed shape, so a row's token never varies between runs; they differ
// from the CPU's sequential sums only in rounding (see sample.h).
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/sample/sample.h"
#include "kernels/ops.h"
#include "kernels/sample_uniform.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kAlignment = 256;
constexpr int kKeyBits = 64;  // all bits of the double keys

size_t AlignUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// A value and its id; Better(a, b): a's value is larger, or equal with a lower id.
struct Candidate {
  float value;
  int id;
};
__device__ __forceinline__ bool Better(const Candidate& a, const Candidate& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

// Block-wide reductions (all threads call; every thread gets the result). Butterfly shuffles
// within a warp, then warp 0 over the warps' results through shared memory: a fixed shape.
// `identity` fills warp 0's lanes past the number of warps.
template <typename T, typename Op>
__device__ T BlockReduce(T v, Op op, std::type_identity_t<T> identity) {
  __shared__ T partial[kWarps];
  __shared__ T result;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v = op(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? partial[lane] : identity;
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      v = op(v, __shfl_xor_sync(kFullMask, v, offset));
    }
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

__device__ Candidate BlockArgmax(Candidate c) {
  __shared__ Candidate partial[kWarps];
  __shared__ Candidate result;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const Candidate other{__shfl_xor_sync(kFullMask, c.value, offset),
                          __shfl_xor_sync(kFullMask, c.id, offset)};
    if (Better(other, c)) c = other;
  }
  if (lane == 0) partial[warp] = c;
  __syncthreads();
  if (warp == 0) {
    c = lane < kWarps ? partial[lane] : Candidate{-INFINITY, INT_MAX};
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const Candidate other{__shfl_xor_sync(kFullMask, c.value, offset),
                            __shfl_xor_sync(kFullMask, c.id, offset)};
      if (Better(other, c)) c = other;
    }
    if (lane == 0) result = c;
  }
  __syncthreads();
  return result;
}

// The sum of the values of the threads before this one (thread order), in double.
__device__ double BlockExclusiveSum(double v) {
  __shared__ double warp_totals[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  double inclusive = v;
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const double up = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  if (lane == kWarpSize - 1) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    double total = lane < kWarps ? warp_totals[lane] : 0.0;
#pragma unroll
    for (int offset = 1; offset < kWarpSize; offset *= 2) {
      const double up = __shfl_up_sync(kFullMask, total, offset);
      if (lane >= offset) total += up;
    }
    if (lane < kWarps) warp_totals[lane] = total;  // inclusive over warps
  }
  __syncthreads();
  const double before_lane = __shfl_up_sync(kFullMask, inclusive, 1);  // lanes < this one
  const double before_warp = warp > 0 ? warp_totals[warp - 1] : 0.0;
  const double result = lane > 0 ? before_warp + before_lane : before_warp;
  __syncthreads();  // warp_totals may be reused by a later call
  return result;
}

struct MaxOp {
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MinOp {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};

// keys[b, i] = p_i (0 for greedy rows), ids[b, i] = i, offsets[b] = b * vocab.
__global__ void __launch_bounds__(kThreads)
    SoftmaxKernel(const float* logits, const SamplingParams* params, int64_t vocab,
                  double* keys, int32_t* ids, int32_t* offsets) {
  const int64_t b = blockIdx.x;
  const float* row = logits + b * vocab;
  double* p = keys + b * vocab;
  int32_t* id = ids + b * vocab;
  if (threadIdx.x == 0) {
    offsets[b] = static_cast<int32_t>(b * vocab);
    if (b == gridDim.x - 1) offsets[b + 1] = static_cast<int32_t>((b + 1) * vocab);
  }
  const float temperature = params[b].temperature;
  if (temperature == 0.0f) {
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      p[i] = 0.0;
      id[i] = static_cast<int32_t>(i);
    }
    return;
  }
  const double t = static_cast<double>(temperature);
  // m = max_i z_i, z_i = logit_i / T.
  double m = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) m = fmax(m, static_cast<double>(row[i]) / t);
  m = BlockReduce(m, MaxOp{}, -INFINITY);
  // S = sum_i exp(z_i - m).
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) s += exp(static_cast<double>(row[i]) / t - m);
  s = BlockReduce(s, SumOp{}, 0.0);
  // p_i = exp(z_i - m) / S.
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    p[i] = exp(static_cast<double>(row[i]) / t - m) / s;
    id[i] = static_cast<int32_t>(i);
  }
}

// tokens[b]: greedy argmax, or top-k / top-p / inverse CDF over the sorted p (see the top).
__global__ void __launch_bounds__(kThreads)
    SelectKernel(const float* logits, const SamplingParams* params, const uint64_t* steps,
                 int64_t vocab, const double* sorted_p, const int32_t* sorted_ids,
                 double* prefix, int32_t* tokens) {
  const int64_t b = blockIdx.x;
  const SamplingParams params_b = params[b];
  if (params_b.temperature == 0.0f) {
    // Each thread starts from its first element, so an all -inf row gives id 0 as on the CPU.
    const float* row = logits + b * vocab;
    Candidate best{-INFINITY, INT_MAX};
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const Candidate c{row[i], static_cast<int>(i)};
      if (i == threadIdx.x || Better(c, best)) best = c;
    }
    best = BlockArgmax(best);
    if (threadIdx.x == 0) tokens[b] = best.id;
    return;
  }
  const double* p = sorted_p + b * vocab;
  double* cdf = prefix + b * vocab;
  const int64_t kept_k =
      params_b.top_k > 0 && params_b.top_k < vocab ? static_cast<int64_t>(params_b.top_k) : vocab;
  const int64_t chunk = (kept_k + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * chunk < kept_k ? threadIdx.x * chunk : kept_k;
  const int64_t end = begin + chunk < kept_k ? begin + chunk : kept_k;

  // P_j = (sum of the chunks before) + p_begin + ... + p_j, added in order.
  double local = 0.0;
  for (int64_t j = begin; j < end; ++j) local += p[j];
  double running = BlockExclusiveSum(local);
  for (int64_t j = begin; j < end; ++j) {
    running += p[j];
    cdf[j] = running;
  }
  __syncthreads();

  // n = the first j + 1 with P_j >= top_p * P_{n_k - 1}; n_k if none.
  const double threshold = static_cast<double>(params_b.top_p) * cdf[kept_k - 1];
  int first = INT_MAX;
  for (int64_t j = begin; j < end; ++j) {
    if (cdf[j] >= threshold) {
      first = static_cast<int>(j);
      break;
    }
  }
  first = BlockReduce(first, MinOp{}, INT_MAX);
  const int64_t kept = first == INT_MAX ? kept_k : first + 1;

  // The first j < n with P_j > u * P_{n - 1}; n - 1 if none.
  const double target = SampleUniformOf(params_b.seed, steps[b]) * cdf[kept - 1];
  int pick = INT_MAX;
  for (int64_t j = begin; j < end && j < kept; ++j) {
    if (cdf[j] > target) {
      pick = static_cast<int>(j);
      break;
    }
  }
  pick = BlockReduce(pick, MinOp{}, INT_MAX);
  if (threadIdx.x == 0) tokens[b] = sorted_ids[b * vocab + (pick == INT_MAX ? kept - 1 : pick)];
}

// CUB's sort of the rows: with temp == nullptr it only sets temp_bytes (host work, no launch).
cudaError_t SortRows(void* temp, size_t& temp_bytes, const double* keys_in, double* keys_out,
                     const int32_t* ids_in, int32_t* ids_out, int64_t batch, int64_t vocab,
                     const int32_t* offsets, cudaStream_t stream) {
  return cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, temp_bytes, keys_in, keys_out, ids_in, ids_out, static_cast<int>(batch * vocab),
      static_cast<int>(batch), offsets, offsets + 1, 0, kKeyBits, stream);
}

}  // namespace

absl::StatusOr<SamplePlan> PlanSample(int64_t batch, int64_t vocab) {
  if (batch < 0 || vocab < 1 || batch * vocab >= INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PlanSample: need batch >= 0, vocab >= 1 and batch * vocab < 2^31, got batch ", batch,
        " and vocab ", vocab));
  }
  SamplePlan plan;
  plan.batch = batch;
  plan.vocab = vocab;
  const size_t items = static_cast<size_t>(batch * vocab);
  size_t offset = 0;
  plan.keys_in = offset;
  offset += AlignUp(items * sizeof(double));
  plan.keys_out = offset;
  offset += AlignUp(items * sizeof(double));
  plan.ids_in = offset;
  offset += AlignUp(items * sizeof(int32_t));
  plan.ids_out = offset;
  offset += AlignUp(items * sizeof(int32_t));
  plan.offsets = offset;
  offset += AlignUp(static_cast<size_t>(batch + 1) * sizeof(int32_t));
  plan.sort_temp = offset;
  if (batch > 0) {
    MLA_CUDA_RETURN_IF_ERROR(SortRows(nullptr, plan.sort_temp_bytes, nullptr, nullptr, nullptr,
                                      nullptr, batch, vocab, nullptr, nullptr));
  }
  offset += AlignUp(plan.sort_temp_bytes);
  plan.workspace_bytes = offset;
  return plan;
}

absl::Status Sample(const float* logits, const SamplingParams* params, const uint64_t* steps,
                    const SamplePlan& plan, void* workspace, int32_t* tokens,
                    cudaStream_t stream) {
  if (plan.batch == 0) return absl::OkStatus();
  if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % kAlignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Sample: needs a 256-byte aligned workspace of ", plan.workspace_bytes, " bytes"));
  }
  char* base = static_cast<char*>(workspace);
  double* keys_in = reinterpret_cast<double*>(base + plan.keys_in);
  double* keys_out = reinterpret_cast<double*>(base + plan.keys_out);
  int32_t* ids_in = reinterpret_cast<int32_t*>(base + plan.ids_in);
  int32_t* ids_out = reinterpret_cast<int32_t*>(base + plan.ids_out);
  int32_t* offsets = reinterpret_cast<int32_t*>(base + plan.offsets);
  const unsigned rows = static_cast<unsigned>(plan.batch);

  SoftmaxKernel<<<rows, kThreads, 0, stream>>>(logits, params, plan.vocab, keys_in, ids_in,
                                               offsets);
  if (absl::Status s = LaunchStatus("Sample SoftmaxKernel"); !s.ok()) return s;
  size_t temp_bytes = plan.sort_temp_bytes;
  MLA_CUDA_RETURN_IF_ERROR(SortRows(base + plan.sort_temp, temp_bytes, keys_in, keys_out, ids_in,
                                    ids_out, plan.batch, plan.vocab, offsets, stream));
  if (absl::Status s = LaunchStatus("Sample cub::DeviceSegmentedRadixSort"); !s.ok()) return s;
  SelectKernel<<<rows, kThreads, 0, stream>>>(logits, params, steps, plan.vocab, keys_out,
                                              ids_out, keys_in, tokens);
  return LaunchStatus("Sample SelectKernel");
}

}  // namespace mla::kernels::cuda
