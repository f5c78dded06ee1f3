// LatentCachePool: one contiguous bf16 array, layer-major.
#include "worker/latent_cache_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace mla {

absl::StatusOr<std::unique_ptr<LatentCachePool>> LatentCachePool::Create(
    Backend& backend, int64_t num_layers, int64_t num_blocks, int64_t d_latent, int64_t d_rope) {
  const int64_t bytes = BlockBytes(num_layers, d_latent, d_rope) * num_blocks;
  absl::StatusOr<std::shared_ptr<void>> storage = backend.Allocate(bytes);
  if (!storage.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat("latent cache of ", num_blocks, " blocks (",
                                                     bytes, " bytes) on ", backend.Describe(),
                                                     ": ", storage.status().message()));
  }
  if (absl::Status s = backend.FillBytes(storage->get(), 0xff, bytes); !s.ok()) return s;
  return std::unique_ptr<LatentCachePool>(
      new LatentCachePool(*std::move(storage), num_layers, num_blocks, d_latent, d_rope));
}

LatentCachePool::LatentCachePool(std::shared_ptr<void> storage, int64_t num_layers,
                                 int64_t num_blocks, int64_t d_latent, int64_t d_rope)
    : storage_(std::move(storage)), num_layers_(num_layers), num_blocks_(num_blocks),
      d_latent_(d_latent), d_rope_(d_rope) {}

kernels::LatentCache LatentCachePool::Layer(int64_t local_layer) {
  const int64_t per_layer = num_blocks_ * kernels::kBlockSize * (d_latent_ + d_rope_);
  return kernels::LatentCache{.data = static_cast<bf16*>(storage_.get()) + local_layer * per_layer,
                              .num_blocks = num_blocks_,
                              .d_latent = d_latent_,
                              .d_rope = d_rope_};
}

int64_t LatentCachePool::BlockBytes(int64_t num_layers, int64_t d_latent, int64_t d_rope) {
  return num_layers * kernels::kBlockSize * (d_latent + d_rope) *
         static_cast<int64_t>(sizeof(bf16));
}

int64_t LatentCachePool::BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t d_latent,
                                        int64_t d_rope) {
  const int64_t per_block = BlockBytes(num_layers, d_latent, d_rope);
  return per_block > 0 ? bytes / per_block : 0;
}

}  // namespace mla
