// CUDA return codes as absl::Status: the one place where the CUDA backend turns a cudaError_t
// into an error a caller can handle (STYLE.md L3, D2). Nothing in kernels/cuda exits or aborts.
//
//   CudaStatus(err, "what")  -> OkStatus, or an error naming `what` and CUDA's error name/text
//   LaunchStatus("Kernel")   -> CudaStatus(cudaGetLastError(), ...): call right after a launch
//   MLA_CUDA_RETURN_IF_ERROR(expr) returns the Status of a failing CUDA runtime call.
//
// Codes: out-of-memory -> RESOURCE_EXHAUSTED, invalid value/configuration -> INVALID_ARGUMENT,
// everything else -> INTERNAL (a sticky error means the context is lost; the caller must stop
// using the device). Header-only, callable from any thread.
#ifndef MLASERVE_KERNELS_CUDA_CUDA_STATUS_H_
#define MLASERVE_KERNELS_CUDA_CUDA_STATUS_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mla::kernels::cuda {

inline absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  const std::string message =
      absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  switch (err) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorInvalidValue:
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidDevicePointer:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

// The status of the launch just made on this thread (configuration errors, missing kernel image).
inline absl::Status LaunchStatus(const char* kernel) {
  return CudaStatus(cudaGetLastError(), kernel);
}

}  // namespace mla::kernels::cuda

#define MLA_CUDA_RETURN_IF_ERROR(expr)                                              \
  do {                                                                              \
    const absl::Status mla_cuda_status_ = ::mla::kernels::cuda::CudaStatus((expr), #expr); \
    if (!mla_cuda_status_.ok()) return mla_cuda_status_;                           \
  } while (false)

#endif  // MLASERVE_KERNELS_CUDA_CUDA_STATUS_H_
