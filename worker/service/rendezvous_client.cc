#include "worker/service/rendezvous_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gloo/common/error.h"
#include "grpcpp/grpcpp.h"
#include "worker/service/control_channel.h"

namespace mla::worker_service {
namespace {

constexpr std::chrono::milliseconds kPollInterval(20);
constexpr std::chrono::milliseconds kCallTimeout(5000);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return context;
}

}  // namespace

RendezvousClient::RendezvousClient(const std::string& address, std::chrono::milliseconds timeout)
    : stub_(v1::RendezvousStore::NewStub(MakeControlChannel(address))),
      timeout_(timeout) {}

void RendezvousClient::set(const std::string& key, const std::vector<char>& data) {
  v1::StoreSetRequest request;
  request.set_key(key);
  request.set_value(std::string(data.begin(), data.end()));
  v1::StoreSetReply reply;
  grpc::Status st = stub_->Set(Context().get(), request, &reply);
  if (!st.ok()) {
    throw gloo::IoException(absl::StrCat("rendezvous set '", key, "': ", st.error_message()));
  }
}

bool RendezvousClient::TryGet(const std::string& key, std::string* value) {
  v1::StoreGetRequest request;
  request.set_key(key);
  v1::StoreGetReply reply;
  grpc::Status st = stub_->Get(Context().get(), request, &reply);
  if (st.error_code() == grpc::StatusCode::NOT_FOUND) return false;
  if (!st.ok()) {
    throw gloo::IoException(absl::StrCat("rendezvous get '", key, "': ", st.error_message()));
  }
  *value = reply.value();
  return true;
}

std::vector<char> RendezvousClient::get(const std::string& key) {
  wait({key}, timeout_);
  std::string value;
  TryGet(key, &value);
  return std::vector<char>(value.begin(), value.end());
}

void RendezvousClient::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void RendezvousClient::wait(const std::vector<std::string>& keys,
                            const std::chrono::milliseconds& timeout) {
  // The client's own timeout is the floor: Gloo passes its (short) collective timeout, and
  // meeting a re-forming group can take longer than one collective.
  const std::chrono::milliseconds wait_for = std::max(timeout, timeout_);
  const auto deadline = std::chrono::steady_clock::now() + wait_for;
  std::string ignored;
  for (const std::string& key : keys) {
    while (!TryGet(key, &ignored)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        throw gloo::IoException(absl::StrCat("rendezvous: timed out after ", wait_for.count(),
                                             " ms waiting for '", key, "'"));
      }
      std::this_thread::sleep_for(kPollInterval);
    }
  }
}

absl::StatusOr<std::string> LocalAddressToward(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  const std::string host = host_port.substr(0, colon);
  const std::string port = colon == std::string::npos ? "1" : host_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve '", host, "'"));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  const bool ok = fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  freeaddrinfo(found);
  if (fd >= 0) close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("no route to '", host, "'"));
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return std::string(text);
}

}  // namespace mla::worker_service
