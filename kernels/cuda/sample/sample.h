// Token sampling on the GPU: the twin of cpu::Sample (kernels/cpu/sample.cc documents the
// algorithm, steps 1-6), batched: row b of logits [batch, vocab] draws tokens[b] with params[b]
// at steps[b]. The uniform number is SampleUniformOf(seed, step) (kernels/sample_uniform.h), the
// same function the CPU calls, so both draw the same u.
//
// Three launches (sample.cu): (1) per row, greedy rows (temperature 0) take the argmax of their
// logits (lowest id on ties) and sort nothing; sampled rows get the softmax's m and S in double
// and copy their candidates as (key = float logit, id): all logits, or under a top-k / top-p cut
// only the largest, enough to hold the top_k ids or the top_p mass (a histogram decides). (2) A
// stable segmented sort of the candidates by logit descending (CUB DeviceSegmentedRadixSort,
// 32-bit keys, each row split into runs of whole histogram buckets): equal logits keep
// ascending id. Rows of few candidates skip it and are sorted in shared memory by (3). (3) Per
// sampled row, p_j recomputed from m and S for the sorted logits (the CPU's expression), the
// top-k / top-p prefix and the inverse CDF; where different logits share the picked p (p rounds
// to the same double), the pick is mapped to the CPU's id order. An all-greedy batch costs one
// read of the logits plus small launches.
//
// Against the CPU: greedy tokens are identical. Sampled tokens are identical except where u * T
// falls within rounding (~1e-16 relative) of a CDF step, or the pick lands on two different
// logits whose p are within rounding of each other: the device's exp and the order of the double
// sums (softmax normaliser, prefix sums, total mass) differ from the host's in the last bits.
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
  size_t keys[2] = {0, 0};  // float [batch, vocab] x 2: candidate logits (CUB's double buffer)
  size_t ids[2] = {0, 0};   // int32 [batch, vocab] x 2: their ids
  size_t prefix = 0;        // double [batch, vocab]: prefix sums of each row's sorted p
  size_t begin = 0;         // int32 [batch * 16]: CUB's segments, 16 runs of a row's candidates
  size_t end = 0;           // int32 [batch * 16]: end == begin where CUB sorts nothing
  size_t stats = 0;         // [batch] per-row m, S, candidates and the largest logit left out
  size_t sort_temp = 0;     // CUB's temporary storage
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
