#include "coordinator/layer_ranges.h"

#include "absl/strings/str_cat.h"

namespace mla::coordinator {

absl::StatusOr<std::vector<LayerRange>> SplitLayers(int64_t num_layers, int64_t pp_size) {
  if (pp_size < 1 || pp_size > num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("pp is ", pp_size, "; must be in [1, ",
                                                   num_layers, "] (the model's layers)"));
  }
  const int64_t base = num_layers / pp_size;
  int64_t extra = num_layers % pp_size;  // stages that get base + 1 layers
  // Which stages take the extra layers: the middle ones, then the first. The remainder is at most
  // pp_size - 1, so the last stage, which also runs the final norm and lm_head, never does.
  std::vector<int64_t> sizes(pp_size, base);
  std::vector<int64_t> order;
  for (int64_t s = 1; s + 1 < pp_size; ++s) order.push_back(s);
  order.push_back(0);
  for (int64_t i = 0; i < static_cast<int64_t>(order.size()) && extra > 0; ++i, --extra) {
    ++sizes[order[i]];
  }
  std::vector<LayerRange> ranges(pp_size);
  int64_t begin = 0;
  for (int64_t s = 0; s < pp_size; ++s) {
    ranges[s] = {.begin = begin, .end = begin + sizes[s]};
    begin += sizes[s];
  }
  return ranges;
}

}  // namespace mla::coordinator
