// Token sampling on the GPU: the twin of cpu::Sample (kernels/cpu/sample.cc documents the
// algorithm, steps 1-6), batched: row b of logits [batch, vocab] draws tokens[b] with params[b]
// at steps[b]. The uniform number is SampleUniformOf(seed, step) (kernels/sample_uniform.h), the
// same function the CPU calls, so both draw the same u.
//
// Three launches (sample.cu): softmax in double into keys [batch, vocab]; a stable segmented
// sort of (p, id) by p descending (CUB DeviceSegmentedRadixSort: equal p keep ascending id, the
// CPU's order); then per row the top-k / top-p prefix and the inverse CDF. Greedy rows
// (temperature 0) take the argmax of their logits, lowest id on ties.
//
// Against the CPU: greedy tokens are identical. Sampled tokens are identical except where u * T
// falls within rounding (~1e-16 relative) of a CDF step: the device's exp and the order of the
// double sums (softmax normaliser, prefix sums) differ from the host's in the last bits.
//
// PlanSample is host-only (it asks CUB for its temporary-storage size); Sample never allocates
// or synchronises, so it can be captured in a CUDA graph.
#ifndef MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_H_
#define MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda {

// The workspace of one (batch, vocab): byte offsets of each piece, all 256-byte aligned.
struct SamplePlan {
  int64_t batch = 0;
  int64_t vocab = 0;
  size_t keys_in = 0;     // double [batch, vocab]: p, then the prefix sums of the sorted p
  size_t keys_out = 0;    // double [batch, vocab]: p sorted descending per row
  size_t ids_in = 0;      // int32 [batch, vocab]: 0 .. vocab-1 per row
  size_t ids_out = 0;     // int32 [batch, vocab]: the ids in sorted order
  size_t offsets = 0;     // int32 [batch + 1]: row b is [offsets[b], offsets[b + 1])
  size_t sort_temp = 0;   // CUB's temporary storage
  size_t sort_temp_bytes = 0;
  size_t workspace_bytes = 0;
};

// REQUIRES: batch >= 0, vocab >= 1, batch * vocab < 2^31. INVALID_ARGUMENT otherwise.
absl::StatusOr<SamplePlan> PlanSample(int64_t batch, int64_t vocab);

// logits: [batch, vocab] f32; params: [batch] (device copies of SamplingParams); steps: [batch];
// tokens: [batch] int32 out. workspace: plan.workspace_bytes, 256-byte aligned.
absl::Status Sample(const float* logits, const SamplingParams* params, const uint64_t* steps,
                    const SamplePlan& plan, void* workspace, int32_t* tokens,
                    cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_SAMPLE_SAMPLE_H_
