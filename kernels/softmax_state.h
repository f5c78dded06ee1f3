// SoftmaxState: the online-softmax state of one (query row, head) over a stream of scores.
//
// For the (already scaled) scores s_1..s_n seen so far it holds
//   m = max_j s_j              running maximum; -inf while empty (no score, or only -inf ones)
//   d = sum_j exp(s_j - m)     running sum of shifted exponentials; 0 while empty
// so the softmax weights are p_j = exp(s_j - m) / d and the log-sum-exp is m + ln(d).
//
// The value accumulator o = sum_j exp(s_j - m) v_j stays with the caller (a 512-float row on
// the CPU, registers on the GPU). It starts at 0, and after each Update or Merge the caller
// applies the returned factors: o <- mine * o + theirs * incoming, where incoming is the new
// value row (Update) or the other state's accumulator (Merge). The normalised output is
// o * InverseSum(). This header is the one copy of this math (STYLE.md I2): the CPU reference,
// the split-KV decode kernel and its combine all use it.
//
// Empty states are exact: updating with -inf, or merging with or into an empty state, never
// evaluates -inf - -inf or 0/0; an empty state has Lse() = -inf and InverseSum() = 0.
// Merge is commutative bit for bit: a.Merge(b) and b.Merge(a) leave the same (m, d) and give
// each accumulator the same factor (the decode combine's butterfly relies on it).
// REQUIRES: scores are not NaN and not +inf. Plain value type: copy freely, no synchronisation.
// Functions are __host__ __device__ under nvcc.
#ifndef MLASERVE_KERNELS_SOFTMAX_STATE_H_
#define MLASERVE_KERNELS_SOFTMAX_STATE_H_

#include <cmath>

#include "kernels/host_device.h"

namespace mla::kernels {

// The GPU kernels keep their softmax in base 2 (exp2 is one instruction): e^x = 2^(x kLog2e),
// so scores are scaled by softmax_scale * kLog2e, and a base-2 max m is m * kLn2 in this
// header's natural-log units.
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// Factors for the caller's accumulator: o_new = mine * o_old + theirs * incoming.
struct SoftmaxRescale {
  float mine = 1.0f;    // exp(m_old - m_new): 1 when the max stayed, 0 when the state was empty
  float theirs = 0.0f;  // exp(s - m_new) for Update, exp(m_other - m_new) for Merge; 0 if empty
};

struct SoftmaxState {
  float m = -INFINITY;  // maximum of the scores seen; -inf when empty
  float d = 0.0f;       // sum over the scores seen of exp(score - m); 0 when empty

  MLA_HOST_DEVICE bool Empty() const { return m == -INFINITY; }

  // Adds one score: m' = max(m, s), d' = d * exp(m - m') + exp(s - m').
  MLA_HOST_DEVICE SoftmaxRescale Update(float score) {
    SoftmaxRescale r;
    if (score == -INFINITY) return r;  // masked: weight 0, state unchanged
    if (score <= m) {                  // here m is finite: the max stays
      r.theirs = expf(score - m);
      d += r.theirs;
      return r;
    }
    r.mine = expf(m - score);  // 0 when this state was empty (exp(-inf))
    r.theirs = 1.0f;
    d = d * r.mine + 1.0f;
    m = score;
    return r;
  }

  // Absorbs the state of a disjoint set of scores: m' = max(m, m_o),
  // d' = d * exp(m - m') + d_o * exp(m_o - m').
  MLA_HOST_DEVICE SoftmaxRescale Merge(const SoftmaxState& other) {
    SoftmaxRescale r;
    if (other.Empty()) return r;  // nothing to add
    if (other.m <= m) {           // here m is finite: the max stays
      r.theirs = expf(other.m - m);
      d += other.d * r.theirs;
      return r;
    }
    r.mine = expf(m - other.m);  // 0 when this state was empty
    r.theirs = 1.0f;
    d = d * r.mine + other.d;
    m = other.m;
    return r;
  }

  // ln(sum_j exp(s_j)) = m + ln(d); -inf when empty.
  MLA_HOST_DEVICE float Lse() const { return Empty() ? -INFINITY : m + logf(d); }

  // 1 / d, the factor that turns the accumulator into the softmax-weighted sum; 0 when empty.
  MLA_HOST_DEVICE float InverseSum() const { return Empty() ? 0.0f : 1.0f / d; }

  // The softmax weight exp(s - m) / d of a score that was added (two-pass use); 0 when empty.
  MLA_HOST_DEVICE float Probability(float score) const {
    return Empty() ? 0.0f : expf(score - m) / d;
  }
};

}  // namespace mla::kernels

#endif  // MLASERVE_KERNELS_SOFTMAX_STATE_H_
