// GlooCommunicator: the CPU backend of Communicator, Gloo's TCP transport.
//
// Create connects the group through a rendezvous store (the coordinator's, or an in-process
// gloo::rendezvous::HashStore in tests); keys are namespaced by `prefix`, so several groups can
// share one store. Gloo reports failures by throwing; this class is the boundary where they
// become absl::Status (Unavailable, or DeadlineExceeded for timeouts). Thread-compatible.
#ifndef MLASERVE_WORKER_GLOO_COMMUNICATOR_H_
#define MLASERVE_WORKER_GLOO_COMMUNICATOR_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/communicator.h"

namespace gloo {
class Context;
namespace rendezvous {
class Store;
}  // namespace rendezvous
}  // namespace gloo

namespace mla {

struct GlooOptions {
  std::string hostname = "127.0.0.1";        // address this rank listens on
  std::chrono::milliseconds timeout{30000};  // per collective and for connecting
};

class GlooCommunicator final : public Communicator {
 public:
  // REQUIRES: store outlives the call (not the communicator).
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(gloo::rendezvous::Store& store,
                                                              const std::string& prefix, int rank,
                                                              int size,
                                                              const GlooOptions& options);
  int rank() const override;
  int size() const override;
  absl::Status AllReduceSum(float* data, int64_t count) override;
  absl::Status AllReduceSum(double* data, int64_t count) override;
  absl::Status AllGather(const float* in, int64_t count, float* out) override;
  absl::Status Broadcast(float* data, int64_t count, int root) override;
  absl::Status Send(const float* data, int64_t count, int peer) override;
  absl::Status Recv(float* data, int64_t count, int peer) override;
  absl::Status Barrier() override;

 private:
  explicit GlooCommunicator(std::shared_ptr<gloo::Context> context);
  template <typename T>
  absl::Status AllReduce(T* data, int64_t count);
  std::shared_ptr<gloo::Context> context_;
  uint32_t next_tag_ = 1;                  // collectives: every rank calls them in one order
  std::vector<uint64_t> sent_, received_;  // point to point: messages so far, per peer
};

}  // namespace mla

#endif  // MLASERVE_WORKER_GLOO_COMMUNICATOR_H_
