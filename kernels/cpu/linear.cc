// Linear (CPU reference): y[r, o] = sum_i x[r, i] * w[o, i].
//
// Shapes: x [rows, in] float32, w [out, in] bf16 (PyTorch's layout), y [rows, out] float32 or
// float64. Accumulation is in y's type, and every y[r, o] is the sequential sum over
// i = 0, 1, ..., in-1 (one running accumulator), so the result does not depend on the tiling
// below. In the float64 variant each product is formed exactly in double.
//
// Speed without threads or intrinsics: the weight is walked in tiles of kOutTile rows by kInTile
// columns. Each tile is converted from bf16 to float once, stored transposed ([i][o]), and reused
// for every input row. The innermost loop then runs over the kOutTile outputs of the tile,
// acc[o] += x[r, i] * tile[i][o]: independent lanes with a fixed trip count, which the compiler
// vectorises without reassociating any sum. A partial tile at the right or bottom edge is padded
// with zero weights, computed in full, and only its valid outputs are stored.
#include <algorithm>
#include <array>
#include <cstdint>

#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr int64_t kOutTile = 32;  // Output columns per tile (the vectorised lane count).
constexpr int64_t kInTile = 128;  // Reduction steps per tile: tile = 16 KiB of float.

// The transposed float copy of one weight tile: tile[i * kOutTile + o] = w[o0 + o, i0 + i].
using WeightTile = std::array<float, kOutTile * kInTile>;

void LoadTile(const bf16* w, int64_t in, int64_t o0, int64_t o_count, int64_t i0, int64_t i_count,
              WeightTile& tile) {
  tile.fill(0.0f);
  for (int64_t o = 0; o < o_count; ++o) {
    const bf16* row = w + (o0 + o) * in + i0;
    for (int64_t i = 0; i < i_count; ++i) {
      tile[i * kOutTile + o] = Bf16ToFloat(row[i]);
    }
  }
}

// acc[o] += sum over i < i_count of xs[i] * tile[i][o], in ascending i.
template <typename Acc>
void AccumulateTile(const float* xs, int64_t i_count, const WeightTile& tile, Acc* acc) {
  for (int64_t i = 0; i < i_count; ++i) {
    const Acc xi = xs[i];
    const float* wt = tile.data() + i * kOutTile;
    for (int64_t o = 0; o < kOutTile; ++o) {
      acc[o] += xi * wt[o];
    }
  }
}

template <typename Acc>
void LinearImpl(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out, Acc* y) {
  WeightTile tile;
  for (int64_t o0 = 0; o0 < out; o0 += kOutTile) {
    const int64_t o_count = std::min(kOutTile, out - o0);
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(y + r * out + o0, y + r * out + o0 + o_count, Acc{0});
    }
    for (int64_t i0 = 0; i0 < in; i0 += kInTile) {
      const int64_t i_count = std::min(kInTile, in - i0);
      LoadTile(w, in, o0, o_count, i0, i_count, tile);
      for (int64_t r = 0; r < rows; ++r) {
        Acc* y_row = y + r * out + o0;
        alignas(64) std::array<Acc, kOutTile> acc{};
        std::copy(y_row, y_row + o_count, acc.begin());
        AccumulateTile(x + r * in + i0, i_count, tile, acc.data());
        std::copy(acc.begin(), acc.begin() + o_count, y_row);
      }
    }
  }
}

}  // namespace

void Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out, float* y) {
  LinearImpl(x, w, rows, in, out, y);
}

void Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out, double* y) {
  LinearImpl(x, w, rows, in, out, y);
}

}  // namespace mla::kernels::cpu
