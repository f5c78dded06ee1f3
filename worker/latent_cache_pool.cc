// LatentCachePool: one contiguous bf16 array, layer-major.
#include "worker/latent_cache_pool.h"

#include <limits>

namespace mla {

LatentCachePool::LatentCachePool(int64_t num_layers, int64_t num_blocks, int64_t d_latent,
                                 int64_t d_rope)
    : num_layers_(num_layers), num_blocks_(num_blocks), d_latent_(d_latent), d_rope_(d_rope),
      data_(static_cast<size_t>(num_layers * num_blocks * kernels::kBlockSize *
                                (d_latent + d_rope)),
            FloatToBf16(std::numeric_limits<float>::quiet_NaN())) {}

kernels::LatentCache LatentCachePool::Layer(int64_t local_layer) {
  const int64_t per_layer = num_blocks_ * kernels::kBlockSize * (d_latent_ + d_rope_);
  return kernels::LatentCache{.data = data_.data() + local_layer * per_layer,
                              .num_blocks = num_blocks_,
                              .d_latent = d_latent_,
                              .d_rope = d_rope_};
}

int64_t LatentCachePool::BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t d_latent,
                                        int64_t d_rope) {
  const int64_t per_block =
      num_layers * kernels::kBlockSize * (d_latent + d_rope) * static_cast<int64_t>(sizeof(bf16));
  return per_block > 0 ? bytes / per_block : 0;
}

}  // namespace mla
