// Checkpoint: opens a model directory's config and safetensors shards and reads tensors
// (whole, by rows or by columns) as bf16 or float.
#include "worker/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace mla {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kIndexName[] = "model.safetensors.index.json";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return text.str();
}

// Converts `count` elements starting at element `first` of `view` to bf16 at `out`.
void ConvertToBf16(const TensorView& view, int64_t first, int64_t count, bf16* out) {
  const int64_t size = DTypeSize(view.dtype);
  const std::byte* src = view.data + first * size;
  if (count == 0) return;
  if (view.dtype == DType::kBF16) {
    std::memcpy(out, src, static_cast<size_t>(count) * sizeof(bf16));
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    out[i] = FloatToBf16(ElementToFloat(view.dtype, src + i * size));
  }
}

void ConvertToFloat(const TensorView& view, int64_t first, int64_t count, float* out) {
  const int64_t size = DTypeSize(view.dtype);
  const std::byte* src = view.data + first * size;
  for (int64_t i = 0; i < count; ++i) out[i] = ElementToFloat(view.dtype, src + i * size);
}

// Product of all dims after the first (1 for rank <= 1).
int64_t RowWidth(const std::vector<int64_t>& shape) {
  int64_t width = 1;
  for (size_t i = 1; i < shape.size(); ++i) width *= shape[i];
  return width;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir + "/config.json");
  if (!config.ok()) return config.status();
  ckpt->config_ = *std::move(config);

  const std::string index_path = dir + "/" + kIndexName;
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    absl::StatusOr<std::string> text = ReadTextFile(index_path);
    if (!text.ok()) return text.status();
    const json index = json::parse(*text, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": not a JSON object with a \"weight_map\" object"));
    }
    std::map<std::string, const SafetensorsFile*> by_file;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": weight_map entry '", name, "' is not a file name"));
      }
      const std::string file_name = file.get<std::string>();
      if (file_name.empty() || file_name.front() == '/' ||
          file_name.find("..") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": weight_map entry '", name, "' names '", file_name,
            "', which is not a file inside the checkpoint directory"));
      }
      auto it = by_file.find(file_name);
      if (it == by_file.end()) {
        const std::string path = dir + "/" + file_name;
        absl::StatusOr<std::unique_ptr<SafetensorsFile>> opened = SafetensorsFile::Open(path);
        if (absl::IsNotFound(opened.status())) {
          return absl::NotFoundError(absl::StrCat(index_path, " names ", file_name,
                                                  ", which is missing: ",
                                                  opened.status().message()));
        }
        if (!opened.ok()) return opened.status();
        ckpt->files_.push_back(*std::move(opened));
        it = by_file.emplace(file_name, ckpt->files_.back().get()).first;
      }
      absl::StatusOr<TensorView> view = it->second->Get(name);
      if (!view.ok()) {
        return absl::NotFoundError(absl::StrCat(index_path, " maps '", name, "' to ", file_name,
                                                ", which has no such tensor"));
      }
      ckpt->where_[name] = it->second;
    }
    return ckpt;
  }

  std::vector<std::string> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::error_code type_ec;
    if (p.extension() == ".safetensors" && it->is_regular_file(type_ec)) {
      paths.push_back(p.string());
    }
  }
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot list checkpoint directory ", dir, ": ",
                                            ec.message()));
  }
  if (paths.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no ", kIndexName, " and no *.safetensors"));
  }
  std::sort(paths.begin(), paths.end());
  for (const std::string& path : paths) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> opened = SafetensorsFile::Open(path);
    if (!opened.ok()) return opened.status();
    ckpt->files_.push_back(*std::move(opened));
    const SafetensorsFile* file = ckpt->files_.back().get();
    for (const std::string& name : file->Names()) {
      auto [it, inserted] = ckpt->where_.emplace(name, file);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(dir, ": tensor '", name,
                                                       "' appears in both ", it->second->path(),
                                                       " and ", path));
      }
    }
  }
  return ckpt;
}

bool Checkpoint::Has(const std::string& name) const { return where_.count(name) != 0; }

absl::StatusOr<TensorView> Checkpoint::Get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, ": no tensor named '", name,
                                            "'"));
  }
  return it->second->Get(name);
}

namespace {

// Looks `name` up and checks its full shape against `expected`.
absl::StatusOr<TensorView> GetChecked(const Checkpoint& ckpt, const std::string& name,
                                      const std::vector<int64_t>& expected) {
  absl::StatusOr<TensorView> view = ckpt.Get(name);
  if (!view.ok()) return view.status();
  if (view->shape != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", ckpt.dir(), ": tensor '", name, "' has shape ", ShapeString(view->shape),
        ", expected ", ShapeString(expected), " (", std::string(DTypeName(view->dtype)), ")"));
  }
  return view;
}

absl::Status CheckRange(const std::string& name, const std::vector<int64_t>& shape,
                        const char* what, int64_t begin, int64_t end, int64_t limit) {
  if (begin < 0 || begin > end || end > limit) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what, " [", begin,
                                                   ", ", end, ") out of range for shape ",
                                                   ShapeString(shape)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<bf16>> Checkpoint::ReadBf16(const std::string& name,
                                                       const std::vector<int64_t>& expected_shape,
                                                       int64_t row_begin,
                                                       int64_t row_end) const {
  absl::StatusOr<TensorView> view = GetChecked(*this, name, expected_shape);
  if (!view.ok()) return view.status();
  if (view->shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': a scalar has no rows to read"));
  }
  absl::Status range = CheckRange(name, view->shape, "rows", row_begin, row_end, view->shape[0]);
  if (!range.ok()) return range;
  const int64_t width = RowWidth(view->shape);
  std::vector<bf16> out(static_cast<size_t>((row_end - row_begin) * width));
  ConvertToBf16(*view, row_begin * width, (row_end - row_begin) * width, out.data());
  return out;
}

absl::StatusOr<std::vector<bf16>> Checkpoint::ReadBf16(
    const std::string& name, const std::vector<int64_t>& expected_shape) const {
  absl::StatusOr<TensorView> view = GetChecked(*this, name, expected_shape);
  if (!view.ok()) return view.status();
  std::vector<bf16> out(static_cast<size_t>(view->numel()));
  ConvertToBf16(*view, 0, view->numel(), out.data());
  return out;
}

absl::StatusOr<std::vector<bf16>> Checkpoint::ReadBf16Columns(
    const std::string& name, const std::vector<int64_t>& expected_shape, int64_t col_begin,
    int64_t col_end) const {
  absl::StatusOr<TensorView> view = GetChecked(*this, name, expected_shape);
  if (!view.ok()) return view.status();
  if (view->shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': column reads need a 2-D ",
                                                   "tensor, got shape ",
                                                   ShapeString(view->shape)));
  }
  const int64_t rows = view->shape[0];
  const int64_t cols = view->shape[1];
  absl::Status range = CheckRange(name, view->shape, "columns", col_begin, col_end, cols);
  if (!range.ok()) return range;
  const int64_t width = col_end - col_begin;
  std::vector<bf16> out(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    ConvertToBf16(*view, r * cols + col_begin, width, out.data() + r * width);
  }
  return out;
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadFloat(
    const std::string& name, const std::vector<int64_t>& expected_shape) const {
  absl::StatusOr<TensorView> view = GetChecked(*this, name, expected_shape);
  if (!view.ok()) return view.status();
  std::vector<float> out(static_cast<size_t>(view->numel()));
  ConvertToFloat(*view, 0, view->numel(), out.data());
  return out;
}

}  // namespace mla
