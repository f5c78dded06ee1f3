// LoadShard: turns a worker's Assignment into what it runs steps with: the checkpoint, the
// model shard for its stage and tensor-parallel rank, and the latent cache pool for that shard's
// layers, on the worker's backend (the CPU, or a GPU with NCCL groups).
//
// MakeModel is the one place that constructs the Model from an Assignment (the shard spec, and
// with parallelism the communicators), so that the parallel code changes only that function.
// Called on the worker's main thread; the results are owned by the caller.
#ifndef MLASERVE_WORKER_SERVICE_SHARD_LOADER_H_
#define MLASERVE_WORKER_SERVICE_SHARD_LOADER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mla/v1/worker.pb.h"
#include "worker/checkpoint.h"
#include "worker/communicator.h"
#include "worker/latent_cache_pool.h"
#include "worker/model.h"

namespace mla::worker_service {

// How many cache blocks to allocate: the first of these that is > 0.
struct CacheSizing {
  int64_t requested_blocks = 0;    // LoadModel.num_cache_blocks (the coordinator's choice)
  int64_t flag_blocks = 0;         // the worker's --num_cache_blocks
  int64_t memory_bytes = 256 << 20;  // else, on the CPU, as many as fit in this much memory
  double device_fraction = 0.85;     // else, on a GPU, in this share of the device memory free
                                     // after loading the weights (the rest: activations)
};

// How the ranks of a group meet (when it has more than one rank): Gloo groups for a CPU backend,
// NCCL groups on a GPU backend's device.
struct CollectiveOptions {
  std::string coordinator;  // host:port: its RendezvousStore serves the groups' rendezvous
  std::string gloo_host;    // address this rank listens on; empty = the interface toward
                            // the coordinator
  absl::Duration timeout = absl::Seconds(60);  // per collective
  absl::Duration meet_timeout = absl::Seconds(60);  // for meeting the group in the store
};

struct LoadedShard {
  std::unique_ptr<Checkpoint> checkpoint;                 // must outlive the model
  std::vector<std::unique_ptr<Communicator>> communicators;  // must outlive the model
  std::unique_ptr<Model> model;
  std::unique_ptr<LatentCachePool> cache;
  int64_t weight_bytes = 0;  // bf16 parameters of the shard's layers, embedding and head
};

// Connects this rank's communicators (its stage's tp group; its pipeline neighbours) through the
// assignment's rendezvous, into shard->communicators, and loads the model for `assignment`.
// Every rank of the group must call it at about the same time (within options.timeout).
// `backend`: where the model runs (MakeBackend); shared by the shards a worker loads one after
// another. REQUIRES: not null.
absl::Status MakeModel(const v1::Assignment& assignment, const CollectiveOptions& options,
                       std::shared_ptr<Backend> backend, LoadedShard* shard);

// Opens `checkpoint_dir`, checks its config hash against the assignment's (FailedPrecondition
// if they differ), loads the shard and allocates the cache. InvalidArgument when no block fits.
// `backend` as for MakeModel; null = the CPU's. `reuse` (may be null): the checkpoint of
// checkpoint_dir, already open (a re-formed group).
absl::StatusOr<LoadedShard> LoadShard(const std::string& checkpoint_dir,
                                      const v1::Assignment& assignment,
                                      const CacheSizing& sizing,
                                      const CollectiveOptions& collectives,
                                      std::shared_ptr<Backend> backend = nullptr,
                                      std::unique_ptr<Checkpoint> reuse = nullptr);

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_SHARD_LOADER_H_
