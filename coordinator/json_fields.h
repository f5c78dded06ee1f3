// Exception-free reads of tokenizer.json members (nlohmann::json): a member of the wrong type
// is reported, never thrown. Header-only; pure functions.
#ifndef MLASERVE_COORDINATOR_JSON_FIELDS_H_
#define MLASERVE_COORDINATOR_JSON_FIELDS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace mla::coordinator {

// The string member `key` of `object`; nullptr if `object` is not an object, or the member is
// absent or not a string.
inline const std::string* StringField(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

// The boolean member `key` of `object`: `fallback` if absent or null, InvalidArgument (naming
// `where`.`key`) if of another type.
inline absl::StatusOr<bool> BoolField(const nlohmann::json& object, const char* key, bool fallback,
                                      const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": not a boolean"));
  }
  return it->get<bool>();
}

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_JSON_FIELDS_H_
