// Safetensors reader (mmap + validation) and streaming writer.
#include "worker/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace mla {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Product of dims times the element size, or false on overflow / negative dims.
bool CheckedNbytes(const std::vector<int64_t>& shape, DType dtype, int64_t* numel,
                   int64_t* nbytes) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
  }
  *numel = n;
  return !__builtin_mul_overflow(n, DTypeSize(dtype), nbytes);
}

// A JSON value that is a non-negative integer representable as int64.
bool AsNonNegativeInt(const json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = i;
    return true;
  }
  return false;
}

// True when `s` is valid UTF-8, i.e. survives a JSON dump and parse unchanged.
bool SurvivesJson(const std::string& s) {
  json value = s;
  json back = json::parse(value.dump(-1, ' ', false, json::error_handler_t::replace), nullptr,
                          false);
  return back == value;
}

struct Extent {
  int64_t begin;
  int64_t end;
  const std::string* name;
};

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorSpec::nbytes() const {
  int64_t numel = 0, nbytes = 0;
  return CheckedNbytes(shape, dtype, &numel, &nbytes) ? nbytes : -1;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": file is ", size,
                                            " bytes, shorter than the 8-byte header length"));
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) return absl::ErrnoToStatus(err, absl::StrCat("cannot mmap ", path));
  file->mapping_ = m;
  file->mapping_size_ = size;
  absl::Status s = file->Parse(static_cast<const std::byte*>(m), size);
  if (!s.ok()) return s;
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(
    const std::byte* bytes, size_t size, const std::string& label) {
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = label;
  absl::Status s = file->Parse(bytes, size);
  if (!s.ok()) return s;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::Status SafetensorsFile::Parse(const std::byte* bytes, size_t size) {
  const std::string& label = path_;
  if (size < 8) {
    return absl::DataLossError(absl::StrCat(label, ": file is ", size,
                                            " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {
    header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  }
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > size - 8) {
    return absl::DataLossError(absl::StrCat(label, ": header length ", header_len,
                                            " runs past the end of the file (", size,
                                            " bytes)"));
  }
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(header_text, header_text + header_len, nullptr, false);
  if (header.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": header is not valid JSON"));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": header is not a JSON object"));
  }
  const std::byte* data = bytes + 8 + header_len;
  const int64_t data_size = static_cast<int64_t>(size - 8 - header_len);

  std::vector<Extent> extents;
  for (const auto& [name, entry] : header.items()) {
    const std::string where = absl::StrCat(label, ": tensor '", name, "': ");
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": __metadata__ is not a string->string object"));
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              label, ": __metadata__ is not a string->string object (key '", key, "')"));
        }
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "entry is not a JSON object"));
    }
    TensorView view;
    view.name = name;
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "dtype is missing or not a string"));
    }
    const std::string dtype_name = entry["dtype"].get<std::string>();
    std::optional<DType> dtype = DTypeFromName(dtype_name);
    if (!dtype.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "unknown dtype '", dtype_name, "'"));
    }
    view.dtype = *dtype;
    if (!entry.contains("shape") || !entry["shape"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "shape is missing or not an array"));
    }
    for (const json& d : entry["shape"]) {
      int64_t dim = 0;
      if (!AsNonNegativeInt(d, &dim)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "shape entry ", d.dump(), " is not a non-negative integer"));
      }
      view.shape.push_back(dim);
    }
    int64_t numel = 0, nbytes = 0;
    if (!CheckedNbytes(view.shape, view.dtype, &numel, &nbytes)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "shape ", ShapeString(view.shape),
                                                     " of ", dtype_name, " overflows int64"));
    }
    const json* offsets = entry.contains("data_offsets") ? &entry["data_offsets"] : nullptr;
    int64_t begin = 0, end = 0;
    if (offsets == nullptr || !offsets->is_array() || offsets->size() != 2 ||
        !AsNonNegativeInt((*offsets)[0], &begin) || !AsNonNegativeInt((*offsets)[1], &end)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "data_offsets must be two non-negative integers"));
    }
    if (begin > end) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "data_offsets [", begin, ", ", end, "] have begin > end"));
    }
    if (end - begin != nbytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but shape ",
          ShapeString(view.shape), " of ", dtype_name, " needs ", nbytes));
    }
    if (end > data_size) {
      return absl::DataLossError(absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                              "] extend past the end of the data section (",
                                              data_size, " bytes; file truncated?)"));
    }
    view.data = data + begin;
    view.nbytes = nbytes;
    auto it = tensors_.emplace(name, std::move(view)).first;
    extents.push_back(Extent{begin, end, &it->first});
  }

  // Entries sorted by offset must tile [0, data_size) with no overlap and no gap.
  std::stable_sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  int64_t cursor = 0;
  const std::string* previous = nullptr;
  for (const Extent& e : extents) {
    if (e.begin < cursor) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, ": tensor '", *e.name, "': data_offsets [", e.begin, ", ", e.end,
          "] overlap tensor '", *previous, "' (which ends at ", cursor, ")"));
    }
    if (e.begin > cursor) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": tensor '", *e.name, "': gap in the data section: bytes [",
                       cursor, ", ", e.begin, ") belong to no tensor"));
    }
    cursor = e.end;
    previous = e.name;
  }
  if (cursor != data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": data section has ", data_size, " bytes but tensors cover only ",
                     cursor, " (gap of trailing bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorView> SafetensorsFile::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", name, "'"));
  }
  return it->second;
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

void SafetensorsWriter::FileCloser::operator()(std::FILE* f) const {
  if (f != nullptr) std::fclose(f);
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<TensorSpec> specs,
    const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::set<std::string> seen;
  int64_t offset = 0;
  for (const TensorSpec& spec : specs) {
    const std::string where = absl::StrCat(path, ": tensor '", spec.name, "': ");
    if (spec.name.empty() || spec.name == "__metadata__" || !SurvivesJson(spec.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "name must be non-empty UTF-8 other than __metadata__"));
    }
    if (!seen.insert(spec.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "name appears twice"));
    }
    const int64_t nbytes = spec.nbytes();
    int64_t end = 0;
    if (nbytes < 0 || __builtin_add_overflow(offset, nbytes, &end)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "shape ", ShapeString(spec.shape),
                                                     " is negative or overflows int64"));
    }
    header[spec.name] = {{"dtype", std::string(DTypeName(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, end}}};
    offset = end;
  }
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [key, value] : metadata) {
      if (!SurvivesJson(key) || !SurvivesJson(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": metadata key '", key, "' or its value is not valid UTF-8"));
      }
      meta[key] = value;
    }
    header["__metadata__"] = std::move(meta);
  }
  std::string text = header.dump(-1, ' ', false, json::error_handler_t::replace);
  text.append((8 - text.size() % 8) % 8, ' ');

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    const int err = errno;
    std::string hint = err == ENOENT ? " (does its directory exist?)" : "";
    return absl::ErrnoToStatus(err, absl::StrCat("cannot create ", path, hint));
  }
  auto writer = std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter());
  writer->path_ = path;
  writer->specs_ = std::move(specs);
  writer->file_.reset(f);
  unsigned char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(text.data(), 1, n, f) != n) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write the header of ", path));
  }
  return writer;
}

SafetensorsWriter::~SafetensorsWriter() = default;

absl::Status SafetensorsWriter::Write(const std::string& name, const void* data, size_t size) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": writer is already finished"));
  }
  if (next_ >= specs_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": tensor '", name, "' written after all declared tensors"));
  }
  const TensorSpec& spec = specs_[next_];
  if (name != spec.name) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": tensor '", name,
                                                      "' written out of order; expected '",
                                                      spec.name, "'"));
  }
  if (static_cast<int64_t>(size) != spec.nbytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor '", name, "': got ", size, " bytes but shape ",
                     ShapeString(spec.shape), " of ", std::string(DTypeName(spec.dtype)),
                     " needs ", spec.nbytes()));
  }
  if (size > 0 && std::fwrite(data, 1, size, file_.get()) != size) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write tensor '", name, "' to ", path_));
  }
  ++next_;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": writer is already finished"));
  }
  if (next_ != specs_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": only ", next_, " of ",
                                                      specs_.size(), " tensors written; next is '",
                                                      specs_[next_].name, "'"));
  }
  std::FILE* f = file_.release();
  const bool flushed = std::fflush(f) == 0;
  const int flush_err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!flushed) return absl::ErrnoToStatus(flush_err, absl::StrCat("cannot flush ", path_));
  if (!closed) return absl::ErrnoToStatus(errno, absl::StrCat("cannot close ", path_));
  return absl::OkStatus();
}

}  // namespace mla
