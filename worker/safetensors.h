// Safetensors files: a validating reader over mmap and a streaming writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {str: str}?}, then the data section; offsets are
// relative to the data section's start.
//
// SafetensorsFile::Open checks everything before handing out a byte: N fits the file and a sane
// bound, the header is a JSON object, each entry has a known dtype, a non-negative shape, and
// offsets with end - begin == numel * dtype size inside the data section; entries must not
// overlap and must cover the data section exactly. Any violation is InvalidArgument (DataLoss
// for a short file) naming the file and the tensor. A file stays mapped while the object lives;
// views into it must not outlive it. Const methods are safe from any thread.
#ifndef MLASERVE_WORKER_SAFETENSORS_H_
#define MLASERVE_WORKER_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/dtype.h"

namespace mla {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // not necessarily aligned
  int64_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory image (same checks as Open); `bytes` must outlive the object.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBytes(const std::byte* bytes,
                                                                    size_t size,
                                                                    const std::string& label);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // NotFound naming the tensor and the file if absent.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  std::vector<std::string> Names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  absl::Status Parse(const std::byte* bytes, size_t size);

  std::string path_;
  void* mapping_ = nullptr;  // munmap'd in the destructor when set
  size_t mapping_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor's header entry, declared before its data is written.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  int64_t nbytes() const;
};

// Writes one safetensors file: the header from all specs first (padded to 8 bytes), then each
// tensor's bytes in spec order, so large tensors can be produced and written one at a time.
// Not thread-safe.
class SafetensorsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<TensorSpec> specs,
      const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  // REQUIRES: name is the next spec's name and size == its nbytes().
  absl::Status Write(const std::string& name, const void* data, size_t size);
  // REQUIRES: every tensor written. Flushes and closes.
  absl::Status Finish();

 private:
  SafetensorsWriter() = default;
  std::string path_;
  std::vector<TensorSpec> specs_;
  size_t next_ = 0;
  struct FileCloser { void operator()(std::FILE* f) const; };
  std::unique_ptr<std::FILE, FileCloser> file_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_SAFETENSORS_H_
