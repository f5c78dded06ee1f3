#include "worker/step_batch.h"

namespace mla {

int64_t StepBatch::num_tokens() const {
  int64_t n = 0;
  for (const SequenceStep& s : seqs) n += static_cast<int64_t>(s.tokens.size());
  return n;
}

}  // namespace mla
