// RmsNorm and AddRmsNorm (CPU reference), MODEL.md §2.
//
//   RmsNorm:    y[r, j] = weight[j] * (x[r, j] * inv_rms[r]),
//               inv_rms[r] = 1 / sqrt(sum_j x[r, j]^2 / dim + eps)
//   AddRmsNorm: residual[r, j] += delta[r, j]; then y[r] = RmsNorm(residual[r]).
//
// Shapes: x, y, residual, delta [rows, dim] float32; weight [dim] float32. All math is float32;
// the sum of squares is one sequential float accumulator per row. The statistic of a row is
// computed before any element of it is written, so y may alias x (RmsNorm). AddRmsNorm finishes
// the residual update of a row before normalising it, so y may also alias delta.
#include <cmath>
#include <cstdint>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

float InverseRms(const float* row, int64_t dim, float eps) {
  float sum_squares = 0.0f;
  for (int64_t j = 0; j < dim; ++j) {
    sum_squares += row[j] * row[j];
  }
  return 1.0f / std::sqrt(sum_squares / static_cast<float>(dim) + eps);
}

void NormalizeRow(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  const float inv_rms = InverseRms(x, dim, eps);
  for (int64_t j = 0; j < dim; ++j) {
    y[j] = weight[j] * (x[j] * inv_rms);
  }
}

}  // namespace

void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    NormalizeRow(x + r * dim, weight, dim, eps, y + r * dim);
  }
}

void AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows, int64_t dim,
                float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float* res_row = residual + r * dim;
    const float* delta_row = delta + r * dim;
    for (int64_t j = 0; j < dim; ++j) {
      res_row[j] += delta_row[j];
    }
    NormalizeRow(res_row, weight, dim, eps, y + r * dim);
  }
}

}  // namespace mla::kernels::cpu
