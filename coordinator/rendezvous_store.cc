#include "coordinator/rendezvous_store.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/status.h"

namespace mla::coordinator {

grpc::ServerUnaryReactor* RendezvousStore::Set(grpc::CallbackServerContext* context,
                                               const v1::StoreSetRequest* request,
                                               v1::StoreSetReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status;
  if (request->key().empty() || request->value().size() > kMaxValueBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "store key must be non-empty and its value at most ", kMaxValueBytes, " bytes"));
  } else {
    absl::MutexLock lock(&mu_);
    if (values_.size() >= kMaxKeys && !values_.contains(request->key())) {
      status = absl::ResourceExhaustedError(absl::StrCat("store holds ", kMaxKeys, " keys"));
    } else {
      values_[request->key()] = request->value();
    }
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* RendezvousStore::Get(grpc::CallbackServerContext* context,
                                               const v1::StoreGetRequest* request,
                                               v1::StoreGetReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    auto it = values_.find(request->key());
    if (it == values_.end()) {
      status = absl::NotFoundError(absl::StrCat("no key '", request->key(), "' yet"));
    } else {
      reply->set_value(it->second);
    }
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace mla::coordinator
