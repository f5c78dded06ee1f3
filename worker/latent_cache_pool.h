// LatentCachePool: the paged latent cache of a shard's layers, in a backend's memory (host or
// device): for each local layer, num_blocks blocks of kBlockSize slots of (d_latent + d_rope)
// bf16 values. Block ids are the coordinator's; the pool only stores. Unused slots start as NaN
// (all bits set), so a read of a slot nothing wrote shows up in outputs. Not thread-safe.
#ifndef MLASERVE_WORKER_LATENT_CACHE_POOL_H_
#define MLASERVE_WORKER_LATENT_CACHE_POOL_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/mla_params.h"
#include "worker/backend.h"

namespace mla {

class LatentCachePool {
 public:
  // Allocates and NaN-fills the pool in `backend`'s memory (ResourceExhausted if it does not
  // fit). The pool may outlive the backend object only if the backend's memory does.
  static absl::StatusOr<std::unique_ptr<LatentCachePool>> Create(Backend& backend,
                                                                 int64_t num_layers,
                                                                 int64_t num_blocks,
                                                                 int64_t d_latent,
                                                                 int64_t d_rope);

  int64_t num_layers() const { return num_layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  kernels::LatentCache Layer(int64_t local_layer);

  // Bytes of one block over `num_layers` layers, and the blocks that fit in `bytes`.
  static int64_t BlockBytes(int64_t num_layers, int64_t d_latent, int64_t d_rope);
  static int64_t BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t d_latent,
                                int64_t d_rope);

 private:
  LatentCachePool(std::shared_ptr<void> storage, int64_t num_layers, int64_t num_blocks,
                  int64_t d_latent, int64_t d_rope);

  std::shared_ptr<void> storage_;
  int64_t num_layers_, num_blocks_, d_latent_, d_rope_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_LATENT_CACHE_POOL_H_
