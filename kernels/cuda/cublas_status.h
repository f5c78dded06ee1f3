// cuBLASLt return codes as absl::Status (the cuBLAS twin of cuda_status.h): the one place where
// a cublasStatus_t becomes an error a caller can handle. Used by Linear and the MLA absorb
// projections. Header-only, callable from any thread.
//
//   CublasStatus(status, "what") -> OkStatus, or an error naming `what` and the status code
//   MLA_CUBLAS_RETURN_IF_ERROR(expr) returns the Status of a failing cuBLASLt call.
//
// Codes: ALLOC_FAILED -> RESOURCE_EXHAUSTED, INVALID_VALUE -> INVALID_ARGUMENT, NOT_SUPPORTED ->
// UNIMPLEMENTED, everything else -> INTERNAL.
#ifndef MLASERVE_KERNELS_CUDA_CUBLAS_STATUS_H_
#define MLASERVE_KERNELS_CUDA_CUBLAS_STATUS_H_

#include <cublasLt.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mla::kernels::cuda {

inline absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": cuBLASLt status ", static_cast<int>(status));
  switch (status) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::ResourceExhaustedError(message);
    case CUBLAS_STATUS_INVALID_VALUE:
      return absl::InvalidArgumentError(message);
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return absl::UnimplementedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace mla::kernels::cuda

#define MLA_CUBLAS_RETURN_IF_ERROR(expr)                                                  \
  do {                                                                                    \
    const absl::Status mla_cublas_status_ = ::mla::kernels::cuda::CublasStatus((expr), #expr); \
    if (!mla_cublas_status_.ok()) return mla_cublas_status_;                             \
  } while (false)

#endif  // MLASERVE_KERNELS_CUDA_CUBLAS_STATUS_H_
