// ValidateGenerateRequest: checks a client's GenerateRequest against the served model and turns
// it into what the scheduler takes, so that nothing out of range gets past the service edge.
//
// Every rejection is InvalidArgument whose message names the field (as the proto spells it) and
// its allowed range. Proto defaults are resolved here: max_tokens 0 means up to the context
// limit, top_p 0 means 1. The seed stays unset when the client gave none (the engine picks one).
// Pure function; any thread.
#ifndef MLASERVE_COORDINATOR_REQUEST_VALIDATION_H_
#define MLASERVE_COORDINATOR_REQUEST_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/model_card.h"
#include "coordinator/sequence.h"
#include "mla/v1/inference.pb.h"

namespace mla::coordinator {

// Limits beyond the model's own.
inline constexpr int kMaxStopTokenIds = 1024;     // stop_token_ids entries at most
inline constexpr size_t kMaxRequestIdBytes = 256;  // request_id length at most

struct ValidatedRequest {
  std::vector<int32_t> prompt;
  GenerationParams params;         // sampling.seed is meaningful only when has_seed
  bool has_seed = false;
  std::string request_id;          // the client's, possibly empty
};

absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const v1::GenerateRequest& request,
                                                         const ModelCard& model);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_REQUEST_VALIDATION_H_
