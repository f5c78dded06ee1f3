// CublasLtSession: what every cuBLASLt-backed op holds — a handle, the device workspace its
// matmuls may use, the choice of algorithm for a plan and the matmul call itself — and
// MatmulPlan, the cached descriptors + algorithm of one GEMM shape (owned, destroyed with it).
//
// Linear and the MLA absorb projections each keep one session and a plan cache keyed by their own
// shapes. ChooseAlgorithm is host work (the heuristic query), so run it before any CUDA-graph
// capture; Matmul neither allocates nor synchronises and can be captured. Thread-compatible: one
// session per host thread / stream.
#ifndef MLASERVE_KERNELS_CUDA_CUBLAS_LT_SESSION_H_
#define MLASERVE_KERNELS_CUDA_CUBLAS_LT_SESSION_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mla::kernels::cuda {

// D = op(A) op(B) with fp32 compute (C = D, beta 0). The owner fills op and the layouts.
struct MatmulPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;
  cublasLtMatrixLayout_t b = nullptr;
  cublasLtMatrixLayout_t d = nullptr;  // also C
  cublasLtMatmulAlgo_t algo{};
  MatmulPlan() = default;
  MatmulPlan(const MatmulPlan&) = delete;
  MatmulPlan& operator=(const MatmulPlan&) = delete;
  ~MatmulPlan();
  // Creates `op`: fp32 compute and scale type, with the given transposes of A and B.
  absl::Status CreateOp(cublasOperation_t transa, cublasOperation_t transb);
};

class CublasLtSession {
 public:
  static absl::StatusOr<std::unique_ptr<CublasLtSession>> Create(size_t workspace_bytes);
  ~CublasLtSession();
  CublasLtSession(const CublasLtSession&) = delete;
  CublasLtSession& operator=(const CublasLtSession&) = delete;

  // Sets plan.algo to the heuristic's first algorithm within this workspace; with
  // min_alignment_bytes > 0 the operands are promised that alignment. Unimplemented naming
  // `what` if cuBLASLt has none.
  absl::Status ChooseAlgorithm(MatmulPlan& plan, uint32_t min_alignment_bytes,
                               const std::string& what) const;

  // d = op(a) op(b) on `stream` with plan's descriptors and algorithm; d is of plan.d's type.
  absl::Status Matmul(const MatmulPlan& plan, const void* a, const void* b, void* d,
                      cudaStream_t stream, const char* what) const;

 private:
  CublasLtSession() = default;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_CUBLAS_LT_SESSION_H_
