#include "security/api_token.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "security/credentials.h"

namespace mla::security {

absl::StatusOr<ApiToken> ApiToken::FromFlags(const std::string& token,
                                             const std::string& token_file) {
  if (!token.empty() && !token_file.empty()) {
    return absl::InvalidArgumentError("give --api_token or --api_token_file, not both");
  }
  if (token_file.empty()) return ApiToken(token);
  absl::StatusOr<std::string> contents = ReadFileToString(token_file);
  if (!contents.ok()) return contents.status();
  absl::string_view line = *contents;
  line = line.substr(0, line.find('\n'));
  line = absl::StripAsciiWhitespace(line);
  if (line.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the token file '", token_file, "' is empty"));
  }
  return ApiToken(std::string(line));
}

bool ApiToken::Accepts(absl::string_view authorization) const {
  if (token_.empty()) return true;
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  const absl::string_view given = absl::StripAsciiWhitespace(authorization.substr(kScheme.size()));
  // Constant time in the contents: every byte of the expected token is compared.
  unsigned char diff = given.size() == token_.size() ? 0 : 1;
  for (size_t i = 0; i < token_.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(token_[i]);
  }
  return diff == 0;
}

grpc::Status ApiToken::CheckGrpc(const grpc::ServerContextBase& context) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer <token>\" metadata");
  }
  if (!Accepts(absl::string_view(found->second.data(), found->second.size()))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  return grpc::Status::OK;
}

}  // namespace mla::security
