// MoeCombine on the GPU (twin of cpu::MoeCombine) as a deterministic per-token gather-sum:
//
//   out[t, :] += sum over j with sorted_pairs[j] / top_k == t, in ascending j, of
//                weights[sorted_pairs[j]] * expert_out[j, :]
//
// which is the CPU's loop over j regrouped by token: the CPU adds a token's terms in ascending
// j too, so with separately rounded products and sums (__fmul_rn, __fadd_rn: no FMA
// contraction) the result is the CPU's bit for bit, and no atomics are needed.
// Shapes: expert_out [count, dim] f32, sorted_pairs [count] int32, weights [tokens, top_k] f32,
// out [tokens, dim] f32; workspace: position [tokens * top_k] int32.
// Two steps: (1) position[p] = j where sorted_pairs[j] = p, else -1 (memset to 0xff, then one
// thread per j); (2) one block per token: thread 0 lists the token's j in ascending order (at
// most top_k <= 32, insertion sort) into shared memory, then the threads stride over dim.
// MoeCombineRange is the same two steps; only step (1) reads its first pair and count from device
// memory (PairRange), so both give the same positions and step (2) the same bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/moe/moe.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

// The pairs that expert_out's rows take: row j < count is pair pairs[j]. Either given on the
// host (MoeCombine: begin == end == null) or read from device memory when the kernel runs
// (MoeCombineRange: pairs + *begin, count = *end - *begin cut to [0, max_count]).
struct PairRange {
  const int32_t* pairs;
  int64_t max_count;                // the host count, or the bound on the device one
  const int32_t* begin = nullptr;   // device int32, or null
  const int32_t* end = nullptr;

  __device__ const int32_t* First() const { return begin != nullptr ? pairs + *begin : pairs; }
  __device__ int64_t Count() const {
    if (begin == nullptr) return max_count;
    const int64_t n = static_cast<int64_t>(*end) - *begin;
    return n < 0 ? 0 : (n < max_count ? n : max_count);
  }
};

// position[pairs[j]] = j for j < count.
__global__ void __launch_bounds__(kThreads) InvertPairsKernel(PairRange range, int32_t* position) {
  const int32_t* pairs = range.First();
  const int64_t count = range.Count();
  for (int64_t j = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; j < count;
       j += static_cast<int64_t>(gridDim.x) * kThreads) {
    position[pairs[j]] = static_cast<int32_t>(j);
  }
}

// out[t, :] += w_j * expert_out[j, :] over the token's j, ascending.
__global__ void __launch_bounds__(kThreads)
    GatherSumKernel(const float* expert_out, const float* weights, const int32_t* position,
                    int64_t top_k, int64_t dim, float* out) {
  __shared__ int32_t rows[kMoeMaxTopK];   // the token's j, ascending
  __shared__ float scales[kMoeMaxTopK];   // weights of those pairs
  __shared__ int num_rows;
  const int64_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    int n = 0;
    for (int64_t c = 0; c < top_k; ++c) {
      const int32_t j = position[t * top_k + c];
      if (j < 0) continue;  // this pair is not in expert_out
      const float w = weights[t * top_k + c];
      int k = n++;
      for (; k > 0 && rows[k - 1] > j; --k) {  // insertion sort by j
        rows[k] = rows[k - 1];
        scales[k] = scales[k - 1];
      }
      rows[k] = j;
      scales[k] = w;
    }
    num_rows = n;
  }
  __syncthreads();
  float* out_row = out + t * dim;
  for (int64_t d = threadIdx.x; d < dim; d += kThreads) {
    float acc = out_row[d];
    for (int k = 0; k < num_rows; ++k) {
      acc = __fadd_rn(acc, __fmul_rn(scales[k], expert_out[rows[k] * dim + d]));
    }
    out_row[d] = acc;
  }
}

// Both launchers: `op` and `count_name` name the caller and its count in messages.
absl::Status CombinePairs(const char* op, const char* count_name, const float* expert_out,
                          const PairRange& range, const float* weights, int64_t tokens,
                          int64_t top_k, int64_t dim, void* workspace, float* out,
                          cudaStream_t stream) {
  if (top_k <= 0 || top_k > kMoeMaxTopK) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": top_k must be in [1, ", kMoeMaxTopK, "], got ", top_k));
  }
  if (range.max_count > tokens * top_k) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", count_name,
                                                   " must be <= tokens * top_k = ",
                                                   tokens * top_k, ", got ", range.max_count));
  }
  if (tokens == 0) return absl::OkStatus();
  if (workspace == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": needs a workspace of ", MoeCombineWorkspaceBytes(tokens, top_k), " bytes"));
  }
  int32_t* position = static_cast<int32_t*>(workspace);
  MLA_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(position, 0xff, MoeCombineWorkspaceBytes(tokens, top_k), stream));
  if (range.max_count > 0) {
    const int64_t blocks = (range.max_count + kThreads - 1) / kThreads;
    InvertPairsKernel<<<static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks),
                        kThreads, 0, stream>>>(range, position);
    if (absl::Status s = LaunchStatus("InvertPairsKernel"); !s.ok()) return s;
  }
  GatherSumKernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(
      expert_out, weights, position, top_k, dim, out);
  return LaunchStatus("GatherSumKernel");
}

}  // namespace

size_t MoeCombineWorkspaceBytes(int64_t tokens, int64_t top_k) {
  return static_cast<size_t>(tokens * top_k) * sizeof(int32_t);
}

absl::Status MoeCombine(const float* expert_out, const int32_t* sorted_pairs,
                        const float* weights, int64_t count, int64_t tokens, int64_t top_k,
                        int64_t dim, void* workspace, float* out, cudaStream_t stream) {
  return CombinePairs("MoeCombine", "count", expert_out,
                      PairRange{.pairs = sorted_pairs, .max_count = count}, weights, tokens,
                      top_k, dim, workspace, out, stream);
}

absl::Status MoeCombineRange(const float* expert_out, const int32_t* sorted_pairs,
                             const int32_t* begin, const int32_t* end, const float* weights,
                             int64_t max_count, int64_t tokens, int64_t top_k, int64_t dim,
                             void* workspace, float* out, cudaStream_t stream) {
  if (begin == nullptr || end == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeCombineRange: ", begin == nullptr ? "begin" : "end", " must not be null"));
  }
  if (max_count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeCombineRange: max_count must be >= 0, got ", max_count));
  }
  return CombinePairs(
      "MoeCombineRange", "max_count", expert_out,
      PairRange{.pairs = sorted_pairs, .max_count = max_count, .begin = begin, .end = end},
      weights, tokens, top_k, dim, workspace, out, stream);
}

}  // namespace mla::kernels::cuda
