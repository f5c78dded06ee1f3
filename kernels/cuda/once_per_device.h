// OncePerDevice: host work a launcher would otherwise repeat on every launch (a kernel's
// shared-memory opt-in, an occupancy query), done once per CUDA device and kept. A driver call
// per launch is host time that an eager caller sees on every layer of every step.
//
//   static PerDeviceSlots slots;  // one per launcher (and per kernel it configures)
//   MLA_ASSIGN_OR_RETURN(int64_t v, OncePerDevice(slots, [&]() -> absl::StatusOr<int64_t> {...}));
//   MLA_RETURN_IF_ERROR(OptInSharedMemory(slots, Kernel, bytes));  // > 48 KB dynamic smem
//
// make() runs on the calling thread for its current device and must return a positive value
// (0 marks an empty slot); an error is returned and nothing kept. Thread-safe: two threads that
// race on an empty slot both run make() and keep the same value. Devices 0 .. kMaxDevices - 1.
#ifndef MLASERVE_KERNELS_CUDA_ONCE_PER_DEVICE_H_
#define MLASERVE_KERNELS_CUDA_ONCE_PER_DEVICE_H_

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda {

inline constexpr int kMaxDevices = 64;
using PerDeviceSlots = std::array<std::atomic<int64_t>, kMaxDevices>;

template <typename Make>
absl::StatusOr<int64_t> OncePerDevice(PerDeviceSlots& slots, Make make) {
  int device = 0;
  MLA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) {
    return absl::OutOfRangeError(absl::StrCat("CUDA device ", device, " >= ", kMaxDevices));
  }
  std::atomic<int64_t>& slot = slots[device];
  if (const int64_t kept = slot.load(std::memory_order_acquire); kept > 0) return kept;
  absl::StatusOr<int64_t> made = make();
  if (made.ok()) slot.store(*made, std::memory_order_release);
  return made;
}

// The opt-in of `kernel` to `bytes` of dynamic shared memory (needed above 48 KB), once per
// device; slots: one per kernel.
template <typename Kernel>
absl::Status OptInSharedMemory(PerDeviceSlots& slots, Kernel* kernel, int bytes) {
  return OncePerDevice(slots, [&]() -> absl::StatusOr<int64_t> {
           MLA_CUDA_RETURN_IF_ERROR(
               cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
           return 1;
         }).status();
}

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_ONCE_PER_DEVICE_H_
