#include "tools/text_file.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace mla::tools {

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace mla::tools
