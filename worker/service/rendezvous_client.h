// RendezvousClient: a gloo::rendezvous::Store backed by the coordinator's RendezvousStore
// service, so the CPU ranks of a group meet through the coordinator they already know.
//
// The channel is the worker's control channel (control_channel.h: the same TLS credentials).
// get/wait poll the coordinator (every 20 ms) until the key exists or `timeout` passes. Gloo's
// Store interface reports failure only by exception: this class throws gloo::IoException, and
// GlooCommunicator::Create is where that becomes an absl::Status. Used by one thread at a time.
// Also LocalAddressToward: the address of this host's interface that routes to a peer, which is
// where the rank listens for its Gloo connections.
#ifndef MLASERVE_WORKER_SERVICE_RENDEZVOUS_CLIENT_H_
#define MLASERVE_WORKER_SERVICE_RENDEZVOUS_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"
#include "mla/v1/worker.grpc.pb.h"

namespace mla::worker_service {

class RendezvousClient final : public gloo::rendezvous::Store {
 public:
  RendezvousClient(const std::string& address, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  // The value, or nothing yet (NotFound); throws on any other failure.
  bool TryGet(const std::string& key, std::string* value);

  std::unique_ptr<v1::RendezvousStore::Stub> stub_;
  std::chrono::milliseconds timeout_;
};

// The local IP address a connection to host:port would leave from (no packet is sent).
absl::StatusOr<std::string> LocalAddressToward(const std::string& host_port);

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_RENDEZVOUS_CLIENT_H_
