// LayerRanges: how a model's transformer layers are split over pipeline stages.
//
// Stages get contiguous ranges that cover [0, num_layers) in order. The split is as even as the
// layer count allows: every stage gets floor(num_layers / pp) layers and the remainder goes one
// each to the middle stages, then to the first. The last stage, which also runs the final norm
// and the lm_head (a vocab x hidden matmul, far heavier than the first stage's embedding lookup),
// never gets an extra layer. Pure function; any thread.
#ifndef MLASERVE_COORDINATOR_LAYER_RANGES_H_
#define MLASERVE_COORDINATOR_LAYER_RANGES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace mla::coordinator {

struct LayerRange {
  int64_t begin = 0;  // first layer of the stage
  int64_t end = 0;    // one past its last layer
  int64_t size() const { return end - begin; }
};

// One range per stage, in stage order. InvalidArgument unless 1 <= pp_size <= num_layers.
absl::StatusOr<std::vector<LayerRange>> SplitLayers(int64_t num_layers, int64_t pp_size);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_LAYER_RANGES_H_
