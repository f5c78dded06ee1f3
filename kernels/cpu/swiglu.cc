// SiluMul (CPU reference): SwiGLU's elementwise part, MODEL.md §5.1.
//
//   out[i] = silu(gate[i]) * up[i],  silu(g) = g / (1 + exp(-g)),  i < n.
//
// gate, up, out: [n] float32, all math float32. For g << 0, exp(-g) overflows to +inf and silu
// gives -0, the correct limit; no clamping is needed.
#include <cmath>
#include <cstdint>

#include "kernels/ops.h"

namespace mla::kernels::cpu {

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace mla::kernels::cpu
