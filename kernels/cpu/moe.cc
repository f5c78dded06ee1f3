// MoE routing, dispatch and combine (CPU reference), MODEL.md §5.2 (topk_method "noaux_tc").
//
// MoeGate, per token, E = num_experts experts in G = num_groups groups of E/G consecutive ids:
//   s_e   = sigmoid(logits_e) = 1 / (1 + exp(-logits_e))           (float32)
//   b_e   = s_e + bias_e                                           (bias null = zeros)
//   G_g   = sum of the two largest b_e in group g (the single b_e if the group has one expert)
//   keep the topk_groups groups of largest G_g (ties: lower group id); the other groups'
//   experts are excluded (the -inf fill of the reference code);
//   K     = the top_k kept experts of largest b_e (ties: lower expert id), output in that order;
//   w_k   = s_{e_k} / (sum_{k' in K} s_{e_k'}) * routed_scaling_factor   if norm_topk_prob
//         = s_{e_k} * routed_scaling_factor                              otherwise.
// The sum is a plain float sum in output order (no epsilon). The bias only chooses; it never
// enters the weights. Precondition: top_k <= topk_groups * E / G.
//
// MoeDispatch: a stable counting sort of the tokens*top_k pairs (pair = token*top_k + choice) by
// expert id. expert_offsets [E + 1] is CSR: expert e's pairs are
// sorted_pairs[expert_offsets[e] .. expert_offsets[e+1]), in ascending pair index.
//
// MoeCombine: for j = 0 .. count-1 in order, with pair = sorted_pairs[j]:
//   out[pair / top_k, :] += weights[pair] * expert_out[j, :]          (float32)
// so each token's contributions are added in sorted (expert id, then pair) order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

// s_e = sigmoid(logit_e) in float32: the score that chooses (plus the bias) and weighs.
float Sigmoid(float logit) { return 1.0f / (1.0f + std::exp(-logit)); }

// The sum of the two largest values of a group (its only value when it has one).
float GroupScore(const float* biased, int64_t size) {
  float best = -std::numeric_limits<float>::infinity();
  float second = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < size; ++k) {
    if (biased[k] > best) {
      second = best;
      best = biased[k];
    } else if (biased[k] > second) {
      second = biased[k];
    }
  }
  return size == 1 ? best : best + second;
}

// Orders indices into `keys` by key descending, then index ascending.
struct DescendingThenLowerId {
  const float* keys;
  bool operator()(int32_t a, int32_t b) const {
    return keys[a] > keys[b] || (keys[a] == keys[b] && a < b);
  }
};

}  // namespace

void MoeGate(const float* logits, const float* bias, int64_t tokens, const MoeRouting& routing,
             int32_t* expert_ids, float* weights) {
  const int64_t num_experts = routing.num_experts;
  const int64_t group_size = num_experts / routing.num_groups;
  const int64_t top_k = routing.top_k;
  std::vector<float> biased(num_experts);
  std::vector<float> group_scores(routing.num_groups);
  std::vector<int32_t> group_order(routing.num_groups);
  std::vector<int32_t> candidates;
  candidates.reserve(num_experts);

  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = logits + t * num_experts;
    for (int64_t e = 0; e < num_experts; ++e) {
      biased[e] = Sigmoid(row[e]) + (bias != nullptr ? bias[e] : 0.0f);
    }
    for (int64_t g = 0; g < routing.num_groups; ++g) {
      group_scores[g] = GroupScore(biased.data() + g * group_size, group_size);
    }
    std::iota(group_order.begin(), group_order.end(), 0);
    std::sort(group_order.begin(), group_order.end(), DescendingThenLowerId{group_scores.data()});

    candidates.clear();
    for (int64_t k = 0; k < routing.topk_groups; ++k) {
      const int64_t first = group_order[k] * group_size;
      for (int64_t e = first; e < first + group_size; ++e) {
        candidates.push_back(static_cast<int32_t>(e));
      }
    }
    std::partial_sort(candidates.begin(), candidates.begin() + top_k, candidates.end(),
                      DescendingThenLowerId{biased.data()});

    std::copy_n(candidates.begin(), top_k, expert_ids + t * top_k);
  }
  MoeGateWeights(logits, expert_ids, tokens, routing, weights);
}

void MoeGateWeights(const float* logits, const int32_t* expert_ids, int64_t tokens,
                    const MoeRouting& routing, float* weights) {
  const int64_t top_k = routing.top_k;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = logits + t * routing.num_experts;
    float* weights_out = weights + t * top_k;
    float total = 0.0f;
    for (int64_t k = 0; k < top_k; ++k) {
      weights_out[k] = Sigmoid(row[expert_ids[t * top_k + k]]);
      total += weights_out[k];
    }
    for (int64_t k = 0; k < top_k; ++k) {
      if (routing.norm_topk_prob) weights_out[k] /= total;
      weights_out[k] *= routing.routed_scaling_factor;
    }
  }
}

void MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k, int64_t num_experts,
                 int32_t* expert_offsets, int32_t* sorted_pairs) {
  const int64_t pairs = tokens * top_k;
  std::fill(expert_offsets, expert_offsets + num_experts + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    ++expert_offsets[expert_ids[p] + 1];
  }
  for (int64_t e = 0; e < num_experts; ++e) {
    expert_offsets[e + 1] += expert_offsets[e];
  }
  std::vector<int32_t> next(expert_offsets, expert_offsets + num_experts);
  for (int64_t p = 0; p < pairs; ++p) {
    sorted_pairs[next[expert_ids[p]]++] = static_cast<int32_t>(p);
  }
}

namespace {

template <typename Out>
void MoeCombineImpl(const float* expert_out, const int32_t* sorted_pairs, const float* weights,
                    int64_t count, int64_t top_k, int64_t dim, Out* out) {
  for (int64_t j = 0; j < count; ++j) {
    const int64_t pair = sorted_pairs[j];
    const Out weight = weights[pair];
    const float* src = expert_out + j * dim;
    Out* dst = out + (pair / top_k) * dim;
    for (int64_t d = 0; d < dim; ++d) {
      dst[d] += weight * static_cast<Out>(src[d]);
    }
  }
}

}  // namespace

void MoeCombine(const float* expert_out, const int32_t* sorted_pairs, const float* weights,
                int64_t count, int64_t top_k, int64_t dim, float* out) {
  MoeCombineImpl(expert_out, sorted_pairs, weights, count, top_k, dim, out);
}

void MoeCombine(const float* expert_out, const int32_t* sorted_pairs, const float* weights,
                int64_t count, int64_t top_k, int64_t dim, double* out) {
  MoeCombineImpl(expert_out, sorted_pairs, weights, count, top_k, dim, out);
}

}  // namespace mla::kernels::cpu
