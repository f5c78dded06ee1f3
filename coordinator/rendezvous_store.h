// RendezvousStore: the key-value store through which the ranks of a group meet (Gloo's store for
// CPU groups, the NCCL ids of GPU groups; mla.v1.RendezvousStore, served next to WorkerControl).
// Keys are written once per group formation (the hub gives each formation its own key prefix);
// Get answers NOT_FOUND until the key exists and the worker polls, so no handler ever blocks.
// Abandon(prefix) ends a formation that lost a rank: its keys are dropped and every later Get or
// Set under the prefix answers ABORTED with the reason, so ranks still meeting stop at once
// instead of waiting out their rendezvous timeout. Handlers run on gRPC's threads; the
// map is guarded by a mutex held only for the lookup. Values are bounded in size and count, so a
// misbehaving client cannot grow the coordinator without limit.
#ifndef MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_
#define MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_

#include <deque>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
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

  // Any thread. The most recent kMaxAbandoned prefixes are remembered.
  void Abandon(const std::string& prefix, const std::string& why);

  static constexpr size_t kMaxAbandoned = 64;

 private:
  // ABORTED if `key` lies under an abandoned prefix, else OK.
  absl::Status CheckNotAbandoned(const std::string& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, std::string>> abandoned_ ABSL_GUARDED_BY(mu_);  // prefix, why
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_RENDEZVOUS_STORE_H_
