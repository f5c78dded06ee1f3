// LatentCachePool: the paged latent cache of a shard's layers on the CPU: for each local layer,
// num_blocks blocks of kBlockSize slots of (d_latent + d_rope) bf16 values. Block ids are the
// coordinator's; the pool only stores. Unused slots start as NaN, so a read of a slot nothing
// wrote shows up in outputs. Not thread-safe.
#ifndef MLASERVE_WORKER_LATENT_CACHE_POOL_H_
#define MLASERVE_WORKER_LATENT_CACHE_POOL_H_

#include <cstdint>
#include <vector>

#include "kernels/mla_params.h"

namespace mla {

class LatentCachePool {
 public:
  LatentCachePool(int64_t num_layers, int64_t num_blocks, int64_t d_latent, int64_t d_rope);

  int64_t num_layers() const { return num_layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  kernels::LatentCache Layer(int64_t local_layer);

  // Blocks that fit in `bytes` for `num_layers` layers.
  static int64_t BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t d_latent,
                                int64_t d_rope);

 private:
  int64_t num_layers_, num_blocks_, d_latent_, d_rope_;
  std::vector<bf16> data_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_LATENT_CACHE_POOL_H_
