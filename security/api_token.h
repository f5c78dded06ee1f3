// ApiToken: the client API's optional bearer token (--api_token or --api_token_file).
//
// Clients send "authorization: Bearer <token>" (gRPC metadata, or the HTTP header). Accepts
// compares in time independent of where the strings differ. With no token configured every
// request is accepted. CheckGrpc is the check at the start of each client API handler:
// UNAUTHENTICATED when the token is missing or wrong. Thread-safe (immutable after construction).
#ifndef MLASERVE_SECURITY_API_TOKEN_H_
#define MLASERVE_SECURITY_API_TOKEN_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace mla::security {

class ApiToken {
 public:
  ApiToken() = default;  // no token: everything is accepted
  explicit ApiToken(std::string token) : token_(std::move(token)) {}

  // From the flags: `token` itself, or the first line of `token_file` (surrounding whitespace
  // dropped). Both set is InvalidArgument; an empty token file is InvalidArgument.
  static absl::StatusOr<ApiToken> FromFlags(const std::string& token,
                                            const std::string& token_file);

  bool required() const { return !token_.empty(); }

  // Whether an Authorization value ("Bearer <token>", scheme case-insensitive) is accepted.
  bool Accepts(absl::string_view authorization) const;

  // OK, or UNAUTHENTICATED, from the call's "authorization" metadata.
  grpc::Status CheckGrpc(const grpc::ServerContextBase& context) const;

 private:
  std::string token_;
};

}  // namespace mla::security

#endif  // MLASERVE_SECURITY_API_TOKEN_H_
