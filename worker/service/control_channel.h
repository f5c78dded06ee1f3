// The worker's channels to its coordinator (the WorkerControl stream and the rendezvous store):
// one place that holds their security, set once by RunWorker before any channel is made.
//
// Threads: SetControlChannelSecurity before the first MakeControlChannel; then any thread.
#ifndef MLASERVE_WORKER_SERVICE_CONTROL_CHANNEL_H_
#define MLASERVE_WORKER_SERVICE_CONTROL_CHANNEL_H_

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"

namespace mla::worker_service {

// credentials: null = plaintext. server_name: overrides the host name the coordinator's
// certificate is checked for (empty = the host dialled). max_message_mb: largest message read.
void SetControlChannelSecurity(std::shared_ptr<grpc::ChannelCredentials> credentials,
                               const std::string& server_name, int max_message_mb);

// A channel to `address` with those settings added to `args`.
std::shared_ptr<grpc::Channel> MakeControlChannel(const std::string& address,
                                                  grpc::ChannelArguments args = {});

}  // namespace mla::worker_service

#endif  // MLASERVE_WORKER_SERVICE_CONTROL_CHANNEL_H_
