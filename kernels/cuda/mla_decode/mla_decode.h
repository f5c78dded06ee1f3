// Absorbed MLA decode attention on the GPU (twin of cpu::MlaDecodeAttention), MODEL.md §3.3
// steps 4-5: MQA of q_abs [tokens, heads, 576] against the paged bf16 latent cache, the value
// being the first 512 values of each key.
//
//   s_j = scale * q_abs . key_j  (j <= the row's position),  out_latent = softmax(s) . c,
//   lse = ln sum_j exp(s_j)
//
// Three units (STYLE.md F4): PlanMlaDecode (plan.h, host: lanes of work balanced over the SMs),
// MlaDecodeAttention (the split-KV kernel, splitkv.cu: TMA, wgmma, warp-specialised; sm_90a)
// and MlaDecodeCombine (combine.cu), which the former calls when the plan cuts a token (always,
// in a fixed launch). The kernels take the plan from device memory (MlaDecodeDevicePlan), so a
// fixed launch captured in a CUDA graph serves every step's plan within its bounds.
//
// Numerics: q_abs is rounded to bf16 and the softmax weights exp(s_j - m) are rounded to bf16
// before the tensor-core products (fp32 accumulation, fp32 softmax state). Against the CPU's
// all-fp32 reference this gives relative errors of about 1e-3 ("bf16 operands" tolerance).
// Only the context's blocks are read: never a block-table entry past the row's last block.
// Slots past the row's position in its last block are loaded (whole 64-slot blocks move by
// TMA) but never used: their scores are masked by a select and their values zero-filled, so
// unused slots may hold anything, NaN included.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {

// How a run reaches the plan and its workspace, and how its grid is sized.
//   Plain launch (grid_lanes = 0): a grid of the plan's own lanes, and the combine only when the
//     plan cuts a token: today's cost. A CUDA graph captured with it is valid only for that plan.
//   Fixed launch (grid_lanes > 0, from MlaDecodeBoundsFor): a grid of grid_lanes lanes whatever
//     the plan (CTAs past the plan's lanes exit at once) and the combine always launched (blocks
//     past the plan's cuts exit), over a workspace laid out for kMaxSlots slots. Everything that
//     changes between steps (lanes, lane boundaries, cuts) is read from *device_plan, so a graph
//     captured with one step's plan serves any later plan within the bounds once that plan has
//     been copied into the same device_plan buffer (the params' pointers and sizes are captured
//     too: the caller keeps them fixed; see MlaDecodeAttention).
// Both functions below only enqueue work on `stream` (no host sync, no allocation, no copy), so
// they may be captured in a CUDA graph; any thread may call them. The caller uploads the device
// plan in stream order before the run and does not overwrite it while a run may still read it.
struct MlaDecodeLaunch {
  const MlaDecodeDevicePlan* device_plan = nullptr;  // DevicePlanOf(plan) in device memory,
                                                     // 16-byte aligned (required)
  void* workspace = nullptr;     // 16-byte aligned; null only when no workspace is needed
  int64_t workspace_bytes = 0;   // bytes at workspace: >= plan.workspace_bytes (plain) or the
                                 // bound's workspace_bytes (fixed)
  int64_t grid_lanes = 0;        // 0: plain launch; > 0: fixed launch of this many lanes
                                 // (>= kMaxLanes: MlaDecodeBoundsFor's grid_lanes)
};

// params: as for the CPU (device pointers); plan: from PlanMlaDecode for this step's rows,
// context lengths and heads (the host copy, for validation and the plain grid); launch: above.
// REQUIRES: *launch.device_plan holds DevicePlanOf(plan) when the kernels run (stream order).
// A fixed launch that is replayed (CUDA graph) with another step's plan additionally requires
// that plan to have at most launch.grid_lanes lanes, the same heads, and params whose captured
// values still describe it: the same device pointers, cache, max_blocks_per_seq and
// batch.num_seqs (a step with fewer sequences pads q_start with trailing empty sequences,
// q_start[s] = the step's token count, so that FindSequence skips them).
// The cache may hold at most 2^31 / 64 blocks (TMA coordinates are 32-bit).
// Returns UNIMPLEMENTED for dims other than d_latent 512 / d_rope 64, INVALID_ARGUMENT for a
// plan, launch or pointers that do not fit (messages name the field, the expected and the actual
// value). A fixed launch validates only what holds for every plan within its bounds.
absl::Status MlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                const MlaDecodeLaunch& launch, cudaStream_t stream);

// Merges the partial results of the cut tokens listed in launch.device_plan->cuts, from
// launch.workspace (layout in plan.h: plan.num_slots() slots for a plain launch, kMaxSlots for a
// fixed one), into their rows of out_latent [tokens, heads, 512] and, if not null,
// lse [tokens, heads]. A plain launch returns at once when plan has no cut; a fixed one always
// launches, for up to kMaxLanes cuts. Rows of uncut tokens are not touched.
absl::Status MlaDecodeCombine(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch,
                              float* out_latent, float* lse, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_MLA_DECODE_H_
