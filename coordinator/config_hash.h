// ConfigHash: the fingerprint of a checkpoint's config.json that a worker and the coordinator
// compare, so that no worker joins a group serving a different model.
//
// FNV-1a (64-bit) over the file's bytes, written as 16 lowercase hex digits. Stable across
// processes, hosts and builds (unlike absl::Hash). Header-only: the worker uses it too.
// Pure functions; any thread.
#ifndef MLASERVE_COORDINATOR_CONFIG_HASH_H_
#define MLASERVE_COORDINATOR_CONFIG_HASH_H_

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla {

inline std::string ConfigHash(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a offset basis
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;  // FNV-1a prime
  }
  return absl::StrFormat("%016x", h);
}

// The bytes of `dir`/config.json. NotFound if it cannot be read.
inline absl::StatusOr<std::string> ReadConfigJson(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace mla

#endif  // MLASERVE_COORDINATOR_CONFIG_HASH_H_
