// ToGrpcStatus: the one place where an absl::Status becomes a grpc::Status (for clients and for
// workers alike). Both follow google.rpc.Code, so the code maps one to one and the message passes
// through unchanged. Every handler of the coordinator finishes its RPCs through this function.
// Pure function; any thread.
#ifndef MLASERVE_COORDINATOR_STATUS_H_
#define MLASERVE_COORDINATOR_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace mla::coordinator {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_STATUS_H_
