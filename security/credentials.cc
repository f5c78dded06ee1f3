#include "security/credentials.h"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace mla::security {
namespace {

bool IsFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string InDir(const std::string& dir, const char* name) {
  if (dir.empty()) return "";
  const std::string path = absl::StrCat(dir, dir.back() == '/' ? "" : "/", name);
  return IsFile(path) ? path : "";
}

absl::Status CheckPair(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a TLS certificate needs its key and the reverse (cert '", files.cert,
                     "', key '", files.key, "')"));
  }
  return absl::OkStatus();
}

}  // namespace

TlsFiles ResolveTlsFiles(const std::string& dir, const TlsFiles& explicit_files) {
  TlsFiles files = explicit_files;
  if (files.cert.empty()) files.cert = InDir(dir, "tls.crt");
  if (files.key.empty()) files.key = InDir(dir, "tls.key");
  if (files.ca.empty()) files.ca = InDir(dir, "ca.crt");
  return files;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  return contents.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, bool require_ca) {
  if (files.empty() && !require_ca) return grpc::InsecureServerCredentials();
  if (absl::Status st = CheckPair(files); !st.ok()) return st;
  if (files.cert.empty()) {
    return absl::InvalidArgumentError("a TLS server needs a certificate and key");
  }
  if (require_ca && files.ca.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs a CA to verify the peers' certificates (ca.crt)");
  }
  absl::StatusOr<std::string> cert = ReadFileToString(files.cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFileToString(files.key);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFileToString(files.ca);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = std::move(*ca);
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  options.pem_key_cert_pairs.push_back({std::move(*key), std::move(*cert)});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files) {
  if (files.empty()) return grpc::InsecureChannelCredentials();
  if (absl::Status st = CheckPair(files); !st.ok()) return st;
  if (files.ca.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client needs the CA that signed the server's certificate (ca.crt)");
  }
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadFileToString(files.ca);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = std::move(*ca);
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFileToString(files.cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileToString(files.key);
    if (!key.ok()) return key.status();
    options.pem_cert_chain = std::move(*cert);
    options.pem_private_key = std::move(*key);
  }
  return grpc::SslCredentials(options);
}

std::string DescribeServer(const TlsFiles& files) {
  if (files.cert.empty()) return "plaintext";
  return files.ca.empty() ? "TLS" : "TLS (mutual: client certificates required)";
}

}  // namespace mla::security
