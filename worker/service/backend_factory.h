// The worker's choice of backend and collectives by device: the CPU with Gloo groups, or one GPU
// with NCCL groups. The one place that knows which backends this build has.
#ifndef MLASERVE_WORKER_SERVICE_BACKEND_FACTORY_H_
#define MLASERVE_WORKER_SERVICE_BACKEND_FACTORY_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"
#include "worker/backend.h"
#include "worker/communicator.h"

namespace mla::worker_service {

// device < 0: the CPU backend; else the CUDA backend on that GPU. FailedPrecondition for a GPU in
// a build without the CUDA backend; the CUDA backend's error for a missing device.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(int device);

// How one rank joins one group (a tp group or a pipeline link) through the store.
struct GroupJoin {
  std::string key;   // the group's name in the store, unique per formation
  int rank = 0;
  int size = 1;
  int device = -1;   // as for MakeBackend
  std::string gloo_host;  // CPU: the address this rank listens on
  std::chrono::milliseconds timeout{60000};  // per collective, and for joining
};

// CPU: a GlooCommunicator meeting through `store`. GPU: an NcclCommunicator; the group's rank 0
// creates the NCCL unique id and publishes it in `store` under key + "/nccl_id", the others
// read it there (so the coordinator, which serves the store, hands the id out).
absl::StatusOr<std::unique_ptr<Communicator>> JoinGroup(gloo::rendezvous::Store& store,
                                                        const GroupJoin& join);

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_BACKEND_FACTORY_H_
