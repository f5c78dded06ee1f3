// Linear through cuBLASLt (see linear.h for the dtype choice).
//
// cuBLAS is column-major; our matrices are row-major. A row-major [R, C] matrix is the same
// bytes as a column-major [C, R] one, so with m = out, n = rows, k = in:
//   D (col-major m x n, ld = out)  = y row-major [rows, out]
//   op(A) = A^T, A col-major k x m (ld = in) = w row-major [out, in]     (TRANSA = T)
//   op(B) = B,   B col-major k x n (ld = in) = x row-major [rows, in]    (TRANSB = N)
// i.e. the usual "TN" GEMM. Compute CUBLAS_COMPUTE_32F with float alpha = 1, beta = 0 (C is not
// read, so a poisoned y is fine). Plans (descriptors + the heuristic's first algorithm) are
// cached per shape in the context.
#include "kernels/cuda/linear/linear.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cublas_status.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda {

absl::StatusOr<std::unique_ptr<LinearContext>> LinearContext::Create(size_t workspace_bytes) {
  std::unique_ptr<LinearContext> context(new LinearContext());
  absl::StatusOr<std::unique_ptr<CublasLtSession>> session =
      CublasLtSession::Create(workspace_bytes);
  if (!session.ok()) return session.status();
  context->session_ = std::move(*session);
  return context;
}

LinearContext::~LinearContext() = default;

absl::StatusOr<const MatmulPlan*> LinearContext::GetPlan(int64_t rows, int64_t in,
                                                         int64_t out, cudaDataType_t dtype,
                                                         cudaDataType_t out_dtype) {
  const auto key =
      std::make_tuple(rows, in, out, static_cast<int>(dtype), static_cast<int>(out_dtype));
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();

  auto plan = std::make_unique<MatmulPlan>();
  if (absl::Status st = plan->CreateOp(CUBLAS_OP_T, CUBLAS_OP_N); !st.ok()) return st;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->a, dtype, in, out, in));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->b, dtype, in, rows, in));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->d, out_dtype, out, rows, out));

  if (absl::Status st = session_->ChooseAlgorithm(
          *plan, 0, absl::StrCat("Linear rows=", rows, " in=", in, " out=", out));
      !st.ok()) {
    return st;
  }
  const MatmulPlan* ptr = plan.get();
  plans_.emplace(key, std::move(plan));
  return ptr;
}

absl::Status LinearContext::Run(const void* x, const void* w, int64_t rows, int64_t in,
                                int64_t out, void* y, cudaDataType_t dtype,
                                cudaDataType_t out_dtype, cudaStream_t stream, const char* what) {
  if (rows == 0 || out == 0) return absl::OkStatus();
  absl::StatusOr<const MatmulPlan*> plan = GetPlan(rows, in, out, dtype, out_dtype);
  if (!plan.ok()) return plan.status();
  return session_->Matmul(**plan, w, x, y, stream, what);
}

absl::Status Linear(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                    int64_t in, int64_t out, float* y, cudaStream_t stream) {
  return context.Run(x, w, rows, in, out, y, CUDA_R_16BF, CUDA_R_32F, stream, "cublasLtMatmul");
}

absl::Status LinearBf16Out(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                           int64_t in, int64_t out, bf16* y, cudaStream_t stream) {
  return context.Run(x, w, rows, in, out, y, CUDA_R_16BF, CUDA_R_16BF, stream,
                     "cublasLtMatmul (bf16 output)");
}

absl::Status LinearF32(LinearContext& context, const float* x, const float* w, int64_t rows,
                       int64_t in, int64_t out, float* y, cudaStream_t stream) {
  return context.Run(x, w, rows, in, out, y, CUDA_R_32F, CUDA_R_32F, stream,
                     "cublasLtMatmul (float32)");
}

}  // namespace mla::kernels::cuda
