// Rotary position embedding with YaRN scaling (CPU reference), MODEL.md §3.4 and §4.
//
// YarnInverseFrequencies (double, stored float), D = rope_dim, i = 0 .. D/2 - 1:
//   w_i   = theta^(-2i/D)
//   f(r)  = D * ln(L0 / (2*pi*r)) / (2 * ln theta)        (L0 = original_max_position)
//   low   = max(floor(f(beta_fast)), 0),  high = min(ceil(f(beta_slow)), D - 1),
//           high += 0.001 when low == high
//   rho_i = clamp((i - low) / (high - low), 0, 1)
//   w'_i  = (w_i / s) * rho_i + w_i * (1 - rho_i)          (s = factor; w'_i = w_i if s <= 1)
// SoftmaxScale = qk_head_dim^-0.5 * m^2, m = 0.1 * mscale_all_dim * ln(s) + 1 if s > 1 else 1,
// computed in double and returned as float.
//
// ApplyRope, in place, DeepSeek's interleaved (GPT-J) pairs: for vector v of (row r, head h) at
// x + r*row_stride + h*head_stride and each pair i < rope_dim/2,
//   a = float(positions[r]) * inv_freq[i]                  (one float32 multiply)
//   c = cosf(a) * cos_sin_scale, s = sinf(a) * cos_sin_scale (float32, correctly rounded libm;
//                                                          a GPU twin needs cosf/sinf, not the
//                                                          fast intrinsics, for large positions)
//   v[2i] <- v[2i]*c - v[2i+1]*s,  v[2i+1] <- v[2i]*s + v[2i+1]*c.
// The cos/sin of a row are computed once and reused by all its heads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

// The (fractional) pair-dimension index whose wavelength fits `rotations` turns into the
// original context length: f(r) above.
double CorrectionDim(double rotations, const RopeConfig& config) {
  const double dim = static_cast<double>(config.rope_dim);
  const double context = static_cast<double>(config.original_max_position);
  return dim * std::log(context / (2.0 * std::numbers::pi * rotations)) /
         (2.0 * std::log(config.theta));
}

double YarnMscale(double factor, double mscale) {
  if (factor <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(factor) + 1.0;
}

}  // namespace

std::vector<float> YarnInverseFrequencies(const RopeConfig& config) {
  const int64_t pairs = config.rope_dim / 2;
  const double dim = static_cast<double>(config.rope_dim);
  const double scaling = config.factor;
  double low = std::max(std::floor(CorrectionDim(config.beta_fast, config)), 0.0);
  double high = std::min(std::ceil(CorrectionDim(config.beta_slow, config)), dim - 1.0);
  if (low == high) high += 0.001;

  std::vector<float> inv_freq(pairs);
  for (int64_t i = 0; i < pairs; ++i) {
    const double base = std::pow(config.theta, -2.0 * static_cast<double>(i) / dim);
    if (scaling <= 1.0) {
      inv_freq[i] = static_cast<float>(base);
      continue;
    }
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    inv_freq[i] = static_cast<float>((base / scaling) * ramp + base * (1.0 - ramp));
  }
  return inv_freq;
}

float SoftmaxScale(const RopeConfig& config, int64_t qk_head_dim) {
  const double m = YarnMscale(config.factor, config.mscale_all_dim);
  return static_cast<float>(m * m / std::sqrt(static_cast<double>(qk_head_dim)));
}

void ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride, int64_t head_stride,
               const int32_t* positions, const float* inv_freq, int64_t rope_dim,
               float cos_sin_scale) {
  const int64_t pairs = rope_dim / 2;
  std::vector<float> cos_table(pairs);
  std::vector<float> sin_table(pairs);
  for (int64_t r = 0; r < rows; ++r) {
    const float position = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < pairs; ++i) {
      const float angle = position * inv_freq[i];
      cos_table[i] = std::cos(angle) * cos_sin_scale;
      sin_table[i] = std::sin(angle) * cos_sin_scale;
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + r * row_stride + h * head_stride;
      for (int64_t i = 0; i < pairs; ++i) {
        const float x0 = v[2 * i];
        const float x1 = v[2 * i + 1];
        v[2 * i] = x0 * cos_table[i] - x1 * sin_table[i];
        v[2 * i + 1] = x0 * sin_table[i] + x1 * cos_table[i];
      }
    }
  }
}

}  // namespace mla::kernels::cpu
