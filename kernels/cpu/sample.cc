// Token sampling (CPU reference). A GPU twin must follow these steps exactly.
//
// SampleUniform(seed, step): a counter-based hash, no state (kernels/sample_uniform.h, shared
// with the GPU sampler).
//   M(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//         z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)   (uint64, wrapping)
//   h = M(M(seed) ^ step);  u = (h >> 11) * 2^-53, a double in [0, 1) with 53 random bits.
//
// Sample(logits [vocab] float32, params, step):
//  1. temperature == 0: return the argmax of logits, the lowest id among equal maxima.
//  2. z_i = double(logits_i) / double(temperature); m = max_i z_i;
//     p_i = exp(z_i - m) / S, S = sum_i exp(z_i - m) summed in ascending id (all double).
//  3. Order ids by p descending, equal p by ascending id: c_0, c_1, ...
//  4. If top_k > 0 keep the first n_k = min(top_k, vocab) of them, else n_k = vocab.
//     M_k = p_{c_0} + ... + p_{c_{n_k-1}} (sequential double sum in that order).
//  5. Top-p is measured within the top-k set (as if renormalised over it): keep the first n
//     ids, n = the smallest j+1 such that P_j = p_{c_0} + ... + p_{c_j} >= double(top_p) * M_k,
//     and n = n_k if no j qualifies; so n >= 1.
//  6. Renormalise over the n kept ids and invert the CDF with u = SampleUniform(seed, step):
//     with T = P_{n-1}, return c_j for the first j < n with P_j > u * T (c_{n-1} if none, which
//     only rounding could cause). Scaling u by T is the renormalisation; no p is divided.
// The result depends only on (logits, params, step): nothing is shared between calls.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/ops.h"
#include "kernels/sample_uniform.h"

namespace mla::kernels::cpu {
namespace {

int32_t Argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

}  // namespace

double SampleUniform(uint64_t seed, uint64_t step) { return SampleUniformOf(seed, step); }

int32_t Sample(const float* logits, int64_t vocab, const SamplingParams& params, uint64_t step) {
  if (params.temperature == 0.0f) return Argmax(logits, vocab);

  // Step 2: softmax in double.
  const double temperature = static_cast<double>(params.temperature);
  std::vector<double> probs(vocab);
  double max_z = static_cast<double>(logits[0]) / temperature;
  for (int64_t i = 0; i < vocab; ++i) {
    probs[i] = static_cast<double>(logits[i]) / temperature;
    max_z = std::max(max_z, probs[i]);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    probs[i] = std::exp(probs[i] - max_z);
    sum += probs[i];
  }
  for (int64_t i = 0; i < vocab; ++i) probs[i] /= sum;

  // Steps 3-4: order the candidates; only the first n_k need to be in order.
  const int64_t kept_k = params.top_k > 0 ? std::min<int64_t>(params.top_k, vocab) : vocab;
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  // A strict total order (ids are distinct), so any sort gives the same sequence.
  const auto more_likely = [&probs](int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  };
  if (kept_k == vocab) {
    std::sort(order.begin(), order.end(), more_likely);
  } else {
    std::partial_sort(order.begin(), order.begin() + kept_k, order.end(), more_likely);
  }
  double mass_k = 0.0;
  for (int64_t j = 0; j < kept_k; ++j) mass_k += probs[order[j]];

  // Step 5: the top-p prefix.
  const double threshold = static_cast<double>(params.top_p) * mass_k;
  int64_t kept = kept_k;
  double cumulative = 0.0;
  for (int64_t j = 0; j < kept_k; ++j) {
    cumulative += probs[order[j]];
    if (cumulative >= threshold) {
      kept = j + 1;
      break;
    }
  }

  // Step 6: inverse CDF over the kept prefix.
  double total = 0.0;
  for (int64_t j = 0; j < kept; ++j) total += probs[order[j]];
  const double target = SampleUniform(params.seed, step) * total;
  cumulative = 0.0;
  for (int64_t j = 0; j < kept; ++j) {
    cumulative += probs[order[j]];
    if (cumulative > target) return order[j];
  }
  return order[kept - 1];
}

}  // namespace mla::kernels::cpu
