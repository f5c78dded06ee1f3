// RoutingTrace: the experts the MoE gate chose for every token of every MoE layer of a run,
// recorded step by step and replayed into another run (ForwardOptions::routing). Replaying one
// backend's choices into another compares their numerics with the same discrete decisions: a
// near-tie in the gate may pick different experts under different rounding (the GPU's bf16
// GEMMs vs the CPU's float32), which moves a token's hidden state far more than rounding does.
//
// Record: after each MoE layer's gate, its expert ids [rows, top_k] are appended (copied to the
// host). Replay: each MoE layer takes the next entry's ids instead of the gate's, with the
// weights the gate gives those experts (kernels::cpu::MoeGateWeights on the layer's own router
// logits), so only the choice is imposed. Entries are consumed in the order recorded, so the
// replaying run must make the same steps with the same rows (same requests, batching and
// prefill chunks); a missing entry or one of another size is FAILED_PRECONDITION. Both runs
// must be op by op (no step graphs) on one worker (tp = pp = 1): model.h.
#ifndef MLASERVE_WORKER_ROUTING_TRACE_H_
#define MLASERVE_WORKER_ROUTING_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/mla_params.h"
#include "worker/backend.h"

namespace mla {

struct RoutingTrace {
  enum class Mode { kRecord, kReplay };
  Mode mode = Mode::kRecord;
  std::vector<std::vector<int32_t>> choices;  // per (step, MoE layer) in forward order
  size_t next = 0;                            // replay: the next entry to take
};

// One MoE layer's gate output (ids, weights [rows, top_k] and the router logits [rows, E] they
// came from, all in the backend's memory), recorded into or replaced from `trace`.
absl::Status TraceRouting(Backend& backend, RoutingTrace& trace, const float* logits,
                          int64_t rows, const kernels::MoeRouting& routing, int32_t* ids,
                          float* weights);

}  // namespace mla

#endif  // MLASERVE_WORKER_ROUTING_TRACE_H_
