// MoE routing, dispatch and combine on the GPU: twins of cpu::MoeGate, cpu::MoeDispatch and
// cpu::MoeCombine (kernels/cpu/moe.cc has the exact algorithm; MODEL.md §5.2). Same contracts,
// device pointers, work enqueued on `stream`; nothing allocates or synchronises, so all three
// can be captured in a CUDA graph.
//
// Results against the CPU twins:
// - MoeGate: the same expert ids in the same order whenever the scores do not nearly tie (the
//   sigmoid is the device's expf, within 2 ulp of the host's, so a choice decided by less than
//   that may differ); weights within fp32 rounding (~1e-7 relative), computed in the CPU's order.
// - MoeDispatch: identical (integer counting sort, stable).
// - MoeCombine: bit-identical: each token's contributions are added in the CPU's order (ascending
//   position in sorted_pairs) with separately rounded multiply and add, no atomics. MoeCombineRange
//   is MoeCombine with the range in device memory, bit for bit.
#ifndef MLASERVE_KERNELS_CUDA_MOE_MOE_H_
#define MLASERVE_KERNELS_CUDA_MOE_MOE_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda {

inline constexpr int64_t kMoeMaxExperts = 1024;  // MoeGate / MoeDispatch shared-memory bound
inline constexpr int64_t kMoeMaxTopK = 32;       // MoeGate / MoeCombine per-token bound

// logits: [tokens, E] f32, bias: [E] f32 or null (zeros); expert_ids / weights: [tokens, top_k],
// ordered by biased score descending (ties: lower id). One thread block per token.
// Returns INVALID_ARGUMENT (naming the field) for a routing the CPU twin's preconditions reject,
// or E > kMoeMaxExperts / top_k > kMoeMaxTopK.
absl::Status MoeGate(const float* logits, const float* bias, int64_t tokens,
                     const MoeRouting& routing, int32_t* expert_ids, float* weights,
                     cudaStream_t stream);

// Stable counting sort of the tokens * top_k (token, choice) pairs by expert id:
// expert_offsets [num_experts + 1] (CSR), sorted_pairs [tokens * top_k] (pair = token * top_k +
// choice, ascending within an expert). REQUIRES: every id in [0, num_experts). One thread block.
absl::Status MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k,
                         int64_t num_experts, int32_t* expert_offsets, int32_t* sorted_pairs,
                         cudaStream_t stream);

// Workspace of MoeCombine: the inverse of sorted_pairs, one int32 per pair.
size_t MoeCombineWorkspaceBytes(int64_t tokens, int64_t top_k);

// out[pair / top_k] += weights[pair] * expert_out[j] for j < count, pair = sorted_pairs[j], each
// token's terms added in ascending j. expert_out: [count, dim], weights: [tokens, top_k],
// out: [tokens, dim] (accumulated into). Unlike the CPU twin it takes `tokens` (the grid) and a
// workspace of MoeCombineWorkspaceBytes(tokens, top_k), 4-byte aligned. REQUIRES: the pairs in
// sorted_pairs[0, count) distinct and < tokens * top_k (a subset of the dispatch, e.g. one
// expert-parallel rank's, is fine).
absl::Status MoeCombine(const float* expert_out, const int32_t* sorted_pairs,
                        const float* weights, int64_t count, int64_t tokens, int64_t top_k,
                        int64_t dim, void* workspace, float* out, cudaStream_t stream);

// MoeCombine with the pairs' range read from device memory when it runs (no host sync: for
// MoeGroupedDown's output, moe_grouped.h): expert_out row r takes sorted_pairs[*begin + r] for
// r < *end - *begin. begin, end: device int32 (typically &expert_offsets[expert_begin] and
// &expert_offsets[expert_begin + num_experts]); max_count: a host bound on *end - *begin (sizes
// the grid; expert_out holds max_count rows), <= tokens * top_k. Bit-identical to
// MoeCombine(expert_out, sorted_pairs + *begin, weights, *end - *begin, ...) with the values on
// the host; same workspace. A device count above max_count is the caller's error: only the first
// max_count rows are added (none if *end < *begin).
absl::Status MoeCombineRange(const float* expert_out, const int32_t* sorted_pairs,
                             const int32_t* begin, const int32_t* end, const float* weights,
                             int64_t max_count, int64_t tokens, int64_t top_k, int64_t dim,
                             void* workspace, float* out, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MOE_MOE_H_
