// WriteTextFile: writes (or replaces) a small text file the tools produce (config.json, the
// safetensors index, tokenizer files). Internal error naming the path if it cannot be written.
#ifndef MLASERVE_TOOLS_TEXT_FILE_H_
#define MLASERVE_TOOLS_TEXT_FILE_H_

#include <string>

#include "absl/status/status.h"

namespace mla::tools {

absl::Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace mla::tools

#endif  // MLASERVE_TOOLS_TEXT_FILE_H_
