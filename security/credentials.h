// TLS material for mla-coordinator and mla-worker: where the PEM files are (explicit flags, or a
// directory laid out like a Kubernetes TLS secret plus its CA: tls.crt, tls.key, ca.crt), and
// the gRPC credentials made from them.
//
// Conventions (one for every port):
// - no files at all: plaintext (InsecureServerCredentials / InsecureChannelCredentials);
// - cert + key on a server: TLS; with ca as well: the server requires a client certificate and
//   verifies it against ca (mutual TLS);
// - ca on a client: TLS, verifying the server against ca (and the host name it dials, or
//   server_name when set); with cert + key as well: it presents them (mutual TLS).
// A cert without its key (or the reverse) is InvalidArgument; an unreadable file is NotFound.
#ifndef MLASERVE_SECURITY_CREDENTIALS_H_
#define MLASERVE_SECURITY_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace mla::security {

struct TlsFiles {
  std::string cert;  // PEM certificate chain (tls.crt)
  std::string key;   // PEM private key (tls.key)
  std::string ca;    // PEM CA bundle the peer is verified against (ca.crt)
  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

// The files of `dir` (tls.crt, tls.key, ca.crt; each only if present), each replaced by the
// explicit path in `explicit_files` where that is set. An empty dir leaves explicit_files as is.
TlsFiles ResolveTlsFiles(const std::string& dir, const TlsFiles& explicit_files);

// The whole contents of a file (PEM, token); NotFound if it cannot be read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Server side, per the conventions above. `require_ca` makes a missing ca an error (the worker
// port, where every peer must be authenticated).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, bool require_ca = false);

// Client side, per the conventions above.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

// "TLS (mutual)", "TLS", "plaintext": for logs.
std::string DescribeServer(const TlsFiles& files);

}  // namespace mla::security

#endif  // MLASERVE_SECURITY_CREDENTIALS_H_
