// Embed (CPU reference): vocab-parallel token embedding lookup, MODEL.md §2 step 1 and §7.2.
//
//   out[t, :] = float(table[ids[t] - vocab_begin, :])  if vocab_begin <= ids[t] < vocab_end
//   out[t, :] = 0                                      otherwise
//
// table: [vocab_end - vocab_begin, dim] bf16 (this rank's contiguous shard of the vocabulary);
// ids: [tokens] int32; out: [tokens, dim] float32. Summing the outputs of all shards (the
// all-reduce) gives the full lookup, since exactly one shard owns each id. Embeddings are not
// scaled.
#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"

namespace mla::kernels::cpu {

void Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim, int64_t vocab_begin,
           int64_t vocab_end, float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t id = ids[t];
    float* row = out + t * dim;
    if (id < vocab_begin || id >= vocab_end) {
      std::fill(row, row + dim, 0.0f);
      continue;
    }
    const bf16* src = table + (id - vocab_begin) * dim;
    for (int64_t j = 0; j < dim; ++j) {
      row[j] = Bf16ToFloat(src[j]);
    }
  }
}

}  // namespace mla::kernels::cpu
