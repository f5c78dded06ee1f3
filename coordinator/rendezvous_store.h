// RendezvousStore: the key-value store through which the CPU ranks of a group meet for Gloo
// (mla.v1.RendezvousStore, served next to WorkerControl). Keys are written once per group
// formation (the hub gives each formation its own key prefix); Get answers NOT_FOUND until the
// key exists and the worker polls, so no handler ever blocks. Handlers run on gRPC's threads; the
// map is guarded by a mutex held only for the lookup. Values are bounded in size and count, so a
// misbehaving client cannot grow the coordinator without limit.
#ifndef MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_
#define MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "mla/v1/worker.grpc.pb.h"

namespace mla::coordinator {

class RendezvousStore final : public v1::RendezvousStore::CallbackService {
 public:
  static constexpr size_t kMaxValueBytes = 1 << 20;
  static constexpr size_t kMaxKeys = 1 << 16;

  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* context,
                                const v1::StoreSetRequest* request,
                                v1::StoreSetReply* reply) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::StoreGetRequest* request,
                                v1::StoreGetReply* reply) override;

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_
