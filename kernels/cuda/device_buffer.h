// DeviceBuffer<T>: an owned array of `count` T in device memory (cudaMalloc), freed on
// destruction. Move-only. For tests, tools and the worker's long-lived allocations; kernels take
// raw device pointers and never allocate.
//
// The copy helpers are synchronous (cudaMemcpy on the legacy default stream, which waits for
// work on blocking streams): they are for setup and checking, never for a decode step's run path
// (STYLE.md I1). Fill() is cudaMemset: Fill(0xff) poisons float and bf16 data with NaN.
// Thread-compatible: one owner at a time.
#ifndef MLASERVE_KERNELS_CUDA_DEVICE_BUFFER_H_
#define MLASERVE_KERNELS_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { Reset(); }

  // REQUIRES: count >= 0. A zero-sized buffer holds a null pointer.
  static absl::StatusOr<DeviceBuffer> Allocate(int64_t count) {
    DeviceBuffer buffer;
    if (count > 0) {
      void* ptr = nullptr;
      MLA_CUDA_RETURN_IF_ERROR(cudaMalloc(&ptr, static_cast<size_t>(count) * sizeof(T)));
      buffer.data_ = static_cast<T*>(ptr);
      buffer.count_ = count;
    }
    return buffer;
  }

  // Allocates host.size() elements and copies host into them.
  static absl::StatusOr<DeviceBuffer> FromHost(const std::vector<T>& host) {
    absl::StatusOr<DeviceBuffer> buffer = Allocate(static_cast<int64_t>(host.size()));
    if (!buffer.ok()) return buffer.status();
    if (absl::Status s = buffer->CopyFromHost(host); !s.ok()) return s;
    return buffer;
  }

  T* get() const { return data_; }
  int64_t count() const { return count_; }
  size_t bytes() const { return static_cast<size_t>(count_) * sizeof(T); }

  // REQUIRES: host.size() == count().
  absl::Status CopyFromHost(const std::vector<T>& host) {
    if (static_cast<int64_t>(host.size()) != count_) {
      return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer::CopyFromHost: ", host.size(),
                                                     " elements for a buffer of ", count_));
    }
    if (count_ == 0) return absl::OkStatus();
    return CudaStatus(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice),
                      "cudaMemcpy host->device");
  }

  absl::StatusOr<std::vector<T>> ToHost() const {
    std::vector<T> host(static_cast<size_t>(count_));
    if (count_ > 0) {
      MLA_CUDA_RETURN_IF_ERROR(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    }
    return host;
  }

  // Sets every byte to `byte` (0xff: NaN for float and bf16).
  absl::Status Fill(unsigned char byte) {
    if (count_ == 0) return absl::OkStatus();
    return CudaStatus(cudaMemset(data_, byte, bytes()), "cudaMemset");
  }

 private:
  void Reset() {
    if (data_ != nullptr) cudaFree(data_);  // an error here has no one to report to
    data_ = nullptr;
    count_ = 0;
  }

  T* data_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_DEVICE_BUFFER_H_
