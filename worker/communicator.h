// Communicator: collectives among a fixed group of ranks (a tensor-parallel group, or two
// neighbouring pipeline stages). Backends: Gloo over TCP on CPUs, NCCL on GPUs; buffers live where
// the backend computes (host memory for Gloo, device memory for NCCL).
//
// Every rank of the group must make the same sequence of collective calls with the same sizes.
// Each call blocks until done or until the communicator's timeout, which returns
// DeadlineExceeded; a peer that went away returns Unavailable. After an error the communicator is
// unusable and must be rebuilt. One thread at a time per communicator.
#ifndef MLASERVE_WORKER_COMMUNICATOR_H_
#define MLASERVE_WORKER_COMMUNICATOR_H_

#include <cstdint>

#include "absl/status/status.h"

namespace mla {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // data[i] = sum over ranks of data[i], for i < count, on every rank.
  virtual absl::Status AllReduceSum(float* data, int64_t count) = 0;
  virtual absl::Status AllReduceSum(double* data, int64_t count) = 0;
  // out[r * count + i] = rank r's in[i]; out has size() * count floats.
  virtual absl::Status AllGather(const float* in, int64_t count, float* out) = 0;
  // Every rank's data becomes root's.
  virtual absl::Status Broadcast(float* data, int64_t count, int root) = 0;
  // Point to point, matched in call order between the two ranks.
  virtual absl::Status Send(const float* data, int64_t count, int peer) = 0;
  virtual absl::Status Recv(float* data, int64_t count, int peer) = 0;
  virtual absl::Status Barrier() = 0;
};

// The communicators of one worker. Null where the group has one member.
struct ModelComms {
  Communicator* tp = nullptr;       // this stage's tensor-parallel group (rank = tp_rank)
  Communicator* pp_prev = nullptr;  // {previous stage's same tp_rank (0), this rank (1)}
  Communicator* pp_next = nullptr;  // {this rank (0), next stage's same tp_rank (1)}
};

}  // namespace mla

#endif  // MLASERVE_WORKER_COMMUNICATOR_H_
