// Planning an absorbed MLA decode step (flashinfer's plan/run split, STYLE.md I1): once per step,
// on the host, from sizes the host already knows. The plan fixes the grid and the workspace, so
// every layer's MlaDecodeAttention run reuses it, with no host sync, inside a CUDA graph.
//
// Split-KV: each (query token, head group) is cut into num_splits ranges of keys_per_split keys
// (whole cache blocks). With one split the kernel writes the normalised output directly; with
// more, each split writes an unnormalised partial output and its softmax state (m, d) to the
// workspace, and MlaDecodeCombine merges them (SoftmaxState::Merge). Splits past a sequence's
// length are empty (m = -inf, d = 0) and merge as nothing.
//
// Workspace layout (num_splits > 1), float32:
//   partial_out   [num_splits, tokens, heads, 512]   sum_j exp(s_j - m) c_j over the split
//   partial_state [num_splits, tokens, heads, 2]     (m, d) of the split
// Plain functions of their arguments; any thread may call them.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_

#include <cstdint>

#include "kernels/cuda/mla_decode/config.h"

namespace mla::kernels::cuda {

struct MlaDecodePlan {
  int64_t tokens = 0;          // query rows of the step (q_start[num_seqs])
  int64_t heads = 0;           // query heads on this rank
  int64_t num_splits = 1;      // key ranges per (token, head group); 1 = no combine
  int64_t keys_per_split = 0;  // a multiple of kBlockSize; covers max_context_len when 1 split
  int64_t workspace_bytes = 0; // 0 when num_splits == 1

  int64_t partial_out_floats() const { return num_splits * tokens * heads * mla_decode::kDLatent; }
};

// Chooses the split so that tokens x head groups x splits fills about one wave of num_sms CTAs
// (one CTA per SM: the kernel uses 219 KB of shared memory), with at least one cache block per
// split. keys_per_split > 0 forces that split size instead (tests, benchmarks).
// REQUIRES: tokens >= 0, heads > 0, max_context_len >= 0 (the longest context in the step),
// num_sms > 0, keys_per_split % kBlockSize == 0.
MlaDecodePlan PlanMlaDecode(int64_t tokens, int64_t heads, int64_t max_context_len, int num_sms,
                            int64_t keys_per_split = 0);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_PLAN_H_
