// MoeGate on the GPU (twin of cpu::MoeGate, kernels/cpu/moe.cc; MODEL.md §5.2), per token:
//
//   s_e = 1 / (1 + expf(-logit_e)),  b_e = s_e + bias_e                    (float32)
//   G_g = the sum of the two largest b_e of group g (its only b_e if the group has one)
//   keep the topk_groups groups of largest G_g (ties: lower group id)
//   K   = the top_k kept experts of largest b_e (ties: lower id), in that order
//   w_k = s_{e_k} / (sum_k' s_{e_k'}) * routed_scaling_factor  (or s * factor without norm)
//
// Shapes: logits [tokens, E] f32, bias [E] f32 (may be null), expert_ids / weights
// [tokens, top_k]. One block of kThreads per token; scores, biased scores, group scores, the
// kept flags and the chosen ids live in shared memory (dynamic: 2E + 2G + top_k words).
// Selection by rank instead of sorting: an element's rank is the number of elements that precede
// it in the CPU's strict order (score descending, then id ascending); groups of rank <
// topk_groups are kept, and a kept expert of rank r < top_k (among kept experts) is output r.
// A strict total order makes the ranks distinct, so this is the CPU's std::sort /
// std::partial_sort order exactly. E^2 comparisons per token (65k for V3's 256 experts) spread
// over the block: cheap next to the logits' GEMM. The group score walks the group in id order
// with the CPU's comparisons, and the weights' sum is one thread's sequential float sum in output
// order, so given the same s_e every value is the CPU's bit for bit; only expf may differ from
// the host's by an ulp.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/moe/moe.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// a precedes b in the CPU's order: larger key first, then lower index.
__device__ __forceinline__ bool Precedes(float key_a, int a, float key_b, int b) {
  return key_a > key_b || (key_a == key_b && a < b);
}

// Dynamic shared memory of one token (STYLE.md T3: named pieces, laid out by Carve()).
struct GateShared {
  float* scores;        // [E]  s_e
  float* biased;        // [E]  b_e
  float* group_scores;  // [G]  G_g
  int* kept;            // [G]  1 if group g is among the topk_groups best
  int* chosen;          // [top_k] expert id of output k

  __device__ static GateShared Carve(void* base, int64_t experts, int64_t groups) {
    GateShared s;
    s.scores = static_cast<float*>(base);
    s.biased = s.scores + experts;
    s.group_scores = s.biased + experts;
    s.kept = reinterpret_cast<int*>(s.group_scores + groups);
    s.chosen = s.kept + groups;
    return s;
  }
  static constexpr int64_t Words(int64_t experts, int64_t groups, int64_t top_k) {
    return 2 * experts + 2 * groups + top_k;
  }
};

__global__ void __launch_bounds__(kThreads)
    MoeGateKernel(const float* logits, const float* bias, MoeRouting routing,
                  int32_t* expert_ids, float* weights) {
  extern __shared__ float shared_words[];
  const int experts = static_cast<int>(routing.num_experts);
  const int groups = static_cast<int>(routing.num_groups);
  const int group_size = experts / groups;
  const int top_k = static_cast<int>(routing.top_k);
  const GateShared sh = GateShared::Carve(shared_words, experts, groups);
  const float* row = logits + blockIdx.x * routing.num_experts;

  // s_e = sigmoid(logit_e);  b_e = s_e + bias_e.
  for (int e = threadIdx.x; e < experts; e += kThreads) {
    const float s = 1.0f / (1.0f + expf(-row[e]));
    sh.scores[e] = s;
    sh.biased[e] = s + (bias != nullptr ? bias[e] : 0.0f);
  }
  __syncthreads();

  // G_g = best + second best b_e of the group, walked in id order as on the CPU.
  for (int g = threadIdx.x; g < groups; g += kThreads) {
    float best = -INFINITY;
    float second = -INFINITY;
    for (int e = g * group_size; e < (g + 1) * group_size; ++e) {
      const float b = sh.biased[e];
      if (b > best) {
        second = best;
        best = b;
      } else if (b > second) {
        second = b;
      }
    }
    sh.group_scores[g] = group_size == 1 ? best : best + second;
  }
  __syncthreads();

  // kept_g = rank_g < topk_groups, rank_g = #{g' preceding g}.
  for (int g = threadIdx.x; g < groups; g += kThreads) {
    int rank = 0;
    for (int other = 0; other < groups; ++other) {
      rank += Precedes(sh.group_scores[other], other, sh.group_scores[g], g);
    }
    sh.kept[g] = rank < routing.topk_groups;
  }
  __syncthreads();

  // For each kept expert: rank_e = #{kept e' preceding e}; output slot rank_e if < top_k.
  for (int e = threadIdx.x; e < experts; e += kThreads) {
    if (!sh.kept[e / group_size]) continue;
    const float b = sh.biased[e];
    int rank = 0;
    for (int other = 0; other < experts && rank < top_k; ++other) {
      rank += sh.kept[other / group_size] && Precedes(sh.biased[other], other, b, e);
    }
    if (rank < top_k) sh.chosen[rank] = e;
  }
  __syncthreads();

  // w_k = s_{e_k} (/ sum_k' s_{e_k'}) * factor, the sum sequential in output order.
  if (threadIdx.x == 0) {
    int32_t* ids_out = expert_ids + blockIdx.x * routing.top_k;
    float* weights_out = weights + blockIdx.x * routing.top_k;
    float total = 0.0f;
    for (int k = 0; k < top_k; ++k) total += sh.scores[sh.chosen[k]];
    for (int k = 0; k < top_k; ++k) {
      float w = sh.scores[sh.chosen[k]];
      if (routing.norm_topk_prob) w /= total;
      w *= routing.routed_scaling_factor;
      ids_out[k] = sh.chosen[k];
      weights_out[k] = w;
    }
  }
}

absl::Status ValidateRouting(const MoeRouting& r) {
  if (r.num_experts <= 0 || r.num_experts > kMoeMaxExperts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MoeGate: routing.num_experts must be in [1, ", kMoeMaxExperts, "], got ", r.num_experts));
  }
  if (r.num_groups <= 0 || r.num_experts % r.num_groups != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeGate: routing.num_groups must divide num_experts (", r.num_experts,
                     "), got ", r.num_groups));
  }
  if (r.topk_groups <= 0 || r.topk_groups > r.num_groups) {
    return absl::InvalidArgumentError(absl::StrCat("MoeGate: routing.topk_groups must be in [1, ",
                                                   r.num_groups, "], got ", r.topk_groups));
  }
  const int64_t candidates = r.topk_groups * (r.num_experts / r.num_groups);
  const int64_t max_top_k = candidates < kMoeMaxTopK ? candidates : kMoeMaxTopK;
  if (r.top_k <= 0 || r.top_k > max_top_k) {
    return absl::InvalidArgumentError(absl::StrCat("MoeGate: routing.top_k must be in [1, ",
                                                   max_top_k, "], got ", r.top_k));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MoeGate(const float* logits, const float* bias, int64_t tokens,
                     const MoeRouting& routing, int32_t* expert_ids, float* weights,
                     cudaStream_t stream) {
  if (absl::Status s = ValidateRouting(routing); !s.ok()) return s;
  if (tokens == 0) return absl::OkStatus();
  const size_t shared_bytes =
      sizeof(float) * GateShared::Words(routing.num_experts, routing.num_groups, routing.top_k);
  MoeGateKernel<<<static_cast<unsigned>(tokens), kThreads, shared_bytes, stream>>>(
      logits, bias, routing, expert_ids, weights);
  return LaunchStatus("MoeGateKernel");
}

}  // namespace mla::kernels::cuda
