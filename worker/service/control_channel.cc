#include "worker/service/control_channel.h"

#include <utility>

#include "absl/synchronization/mutex.h"

namespace mla::worker_service {
namespace {

struct Settings {
  absl::Mutex mu;
  std::shared_ptr<grpc::ChannelCredentials> credentials ABSL_GUARDED_BY(mu);
  std::string server_name ABSL_GUARDED_BY(mu);
  int max_message_mb ABSL_GUARDED_BY(mu) = 64;
};

Settings& Get() {
  static Settings* settings = new Settings();
  return *settings;
}

}  // namespace

void SetControlChannelSecurity(std::shared_ptr<grpc::ChannelCredentials> credentials,
                               const std::string& server_name, int max_message_mb) {
  Settings& s = Get();
  absl::MutexLock lock(&s.mu);
  s.credentials = std::move(credentials);
  s.server_name = server_name;
  s.max_message_mb = max_message_mb;
}

std::shared_ptr<grpc::Channel> MakeControlChannel(const std::string& address,
                                                  grpc::ChannelArguments args) {
  Settings& s = Get();
  absl::MutexLock lock(&s.mu);
  args.SetMaxReceiveMessageSize(s.max_message_mb << 20);
  if (!s.server_name.empty()) args.SetSslTargetNameOverride(s.server_name);
  return grpc::CreateCustomChannel(
      address, s.credentials != nullptr ? s.credentials : grpc::InsecureChannelCredentials(),
      args);
}

}  // namespace mla::worker_service
