#include "worker/routing_trace.h"

#include "absl/strings/str_cat.h"
#include "kernels/ops.h"
#include "worker/status_macros.h"

namespace mla {

absl::Status TraceRouting(Backend& backend, RoutingTrace& trace, const float* logits,
                          int64_t rows, const kernels::MoeRouting& routing, int32_t* ids,
                          float* weights) {
  const int64_t pairs = rows * routing.top_k;
  if (trace.mode == RoutingTrace::Mode::kRecord) {
    std::vector<int32_t>& entry = trace.choices.emplace_back(pairs);
    return backend.CopyToHost(ids, pairs * sizeof(int32_t), entry.data());
  }
  if (trace.next >= trace.choices.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "routing replay: the trace holds ", trace.choices.size(), " MoE layers' choices, the run "
        "needs more"));
  }
  const std::vector<int32_t>& forced = trace.choices[trace.next];
  if (static_cast<int64_t>(forced.size()) != pairs) {
    return absl::FailedPreconditionError(absl::StrCat(
        "routing replay: entry ", trace.next, " holds ", forced.size(), " choices, the layer has ",
        rows, " rows x top_k ", routing.top_k));
  }
  for (const int32_t e : forced) {
    if (e < 0 || e >= routing.num_experts) {
      return absl::FailedPreconditionError(absl::StrCat("routing replay: entry ", trace.next,
                                                        " names expert ", e, " of ",
                                                        routing.num_experts));
    }
  }
  ++trace.next;
  std::vector<float> host_logits(rows * routing.num_experts), host_weights(pairs);
  MLA_RETURN_IF_ERROR(
      backend.CopyToHost(logits, host_logits.size() * sizeof(float), host_logits.data()));
  kernels::cpu::MoeGateWeights(host_logits.data(), forced.data(), rows, routing,
                               host_weights.data());
  MLA_RETURN_IF_ERROR(backend.CopyToBackend(forced.data(), pairs * sizeof(int32_t), ids));
  return backend.CopyToBackend(host_weights.data(), pairs * sizeof(float), weights);
}

}  // namespace mla
