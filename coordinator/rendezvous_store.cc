#include "coordinator/rendezvous_store.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
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
    status = CheckNotAbandoned(request->key());
    if (status.ok() && values_.size() >= kMaxKeys && !values_.contains(request->key())) {
      status = absl::ResourceExhaustedError(absl::StrCat("store holds ", kMaxKeys, " keys"));
    }
    if (status.ok()) values_[request->key()] = request->value();
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
    status = CheckNotAbandoned(request->key());
    auto it = values_.find(request->key());
    if (status.ok() && it == values_.end()) {
      status = absl::NotFoundError(absl::StrCat("no key '", request->key(), "' yet"));
    }
    if (status.ok()) reply->set_value(it->second);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void RendezvousStore::Abandon(const std::string& prefix, const std::string& why) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(values_, [&](const auto& kv) { return absl::StartsWith(kv.first, prefix); });
  abandoned_.emplace_back(prefix, why);
  if (abandoned_.size() > kMaxAbandoned) abandoned_.pop_front();
}

absl::Status RendezvousStore::CheckNotAbandoned(const std::string& key) const {
  for (const auto& [prefix, why] : abandoned_) {
    if (absl::StartsWith(key, prefix)) {
      return absl::AbortedError(absl::StrCat("the group formation '", prefix,
                                             "' was abandoned: ", why));
    }
  }
  return absl::OkStatus();
}

}  // namespace mla::coordinator
