// Grouped routed experts for decode steps: every local expert's SwiGLU MLP (MODEL.md §5.1) in two
// launches, with the experts' row counts read from DEVICE memory (MoeDispatch's expert_offsets),
// so a MoE layer needs no host sync and can be captured in a CUDA graph. The per-expert twin is
// cpu::Linear / cpu::SiluMul on each expert's gathered rows; a whole routed MoE layer is
//
//   MoeDispatch -> MoeGroupedGateUp -> MoeGroupedDown -> MoeCombineRange (moe.h).
//
// Rows. The local experts are global ids [expert_begin, expert_begin + num_experts); their rows
// are the dispatch's sorted pairs j in [expert_offsets[expert_begin], expert_offsets[expert_begin
// + num_experts]) (device values), row r = j - expert_offsets[expert_begin]. Row r belongs to
// expert e with expert_offsets[e] <= j < expert_offsets[e + 1]. MoeGroupedGateUp reads row r's
// input from x[sorted_pairs[j] / top_k]; MoeGroupedDown reads it from act[r]. Outputs are written
// for rows [0, count) only, count = that range's length: rows past it are left untouched.
//
// Precision: the input rows are rounded to bf16 (round to nearest even, as CastToBf16 before
// Linear), products with the bf16 weights are exact and sums are fp32 (tensor cores), so each
// output is cpu::Linear's on the bf16-rounded input up to the fp32 summation order. Against the
// CPU on the unrounded float input the error is that of bf16 operands (~1e-3 relative).
//
// Sizes. Built for decode: at most a few hundred rows in all and typically 0-16 per expert; an
// expert's weights are read from memory once per 16 of its rows. max_rows is a host upper bound
// on the row count (tokens * top_k), used to size the grid and the outputs; the true count comes
// from device memory. A device count above max_rows is the caller's error: rows at or past
// max_rows are then neither computed nor written (no out-of-bounds access).
//
// Launchers validate their arguments (INVALID_ARGUMENT naming the field), never allocate, copy to
// the host or synchronise, and check cudaGetLastError after the launch. Any host thread may call
// them; work runs in order on `stream`.
#ifndef MLASERVE_KERNELS_CUDA_MOE_MOE_GROUPED_H_
#define MLASERVE_KERNELS_CUDA_MOE_MOE_GROUPED_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/bf16.h"

namespace mla::kernels::cuda {

// hidden and width must be multiples of this (each lane loads 8 bf16 = 16 bytes at a time).
inline constexpr int64_t kMoeGroupedAlign = 8;

// The local experts' weights: device arrays (num_experts entries each) of device pointers to
// bf16 [width, hidden] (gate, up) and [hidden, width] (down) matrices, PyTorch's [out, in] layout.
// REQUIRES: every matrix pointer 16-byte aligned (cudaMalloc'd or offset by a multiple of 8
// elements); the arrays and matrices stay unchanged while a launch that reads them runs.
struct MoeGroupedWeights {
  const bf16* const* gate = nullptr;  // [num_experts] -> [width, hidden]
  const bf16* const* up = nullptr;    // [num_experts] -> [width, hidden]
  const bf16* const* down = nullptr;  // [num_experts] -> [hidden, width]
  int64_t expert_begin = 0;           // global id of local expert 0
  int64_t num_experts = 0;            // local experts, in [1, kMoeMaxExperts]
  int64_t hidden = 0;                 // model dim, a positive multiple of kMoeGroupedAlign
  int64_t width = 0;                  // moe_intermediate_size, a positive multiple of 8
};

// act[r] = silu(x_r . gate_e^T) * (x_r . up_e^T) for every row r (see the top), x_r rounded to
// bf16, fp32 accumulation, then SiluMul's formula in fp32 (silu(g) = g / (1 + expf(-g))).
// x: [tokens, hidden] f32; expert_offsets: [global experts + 1] (MoeDispatch's; only entries
// [expert_begin, expert_begin + num_experts] are read); sorted_pairs: [tokens * top_k];
// act: [max_rows, width] f32. REQUIRES: x and act 16-byte aligned, act not aliasing x; every
// sorted_pairs[j] / top_k of the range < tokens. max_rows == 0 enqueues nothing.
absl::Status MoeGroupedGateUp(const float* x, const int32_t* expert_offsets,
                              const int32_t* sorted_pairs, int64_t top_k, int64_t max_rows,
                              const MoeGroupedWeights& w, float* act, cudaStream_t stream);

// y[r] = act[r] (rounded to bf16) . down_e^T for every row r, fp32 accumulation.
// act: [max_rows, width] f32 (MoeGroupedGateUp's); y: [max_rows, hidden] f32. REQUIRES: act and y
// 16-byte aligned, y not aliasing act. max_rows == 0 enqueues nothing.
absl::Status MoeGroupedDown(const float* act, const int32_t* expert_offsets, int64_t max_rows,
                            const MoeGroupedWeights& w, float* y, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MOE_MOE_GROUPED_H_
