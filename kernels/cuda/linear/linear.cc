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
namespace {

cublasLtHandle_t AsHandle(void* handle) { return static_cast<cublasLtHandle_t>(handle); }

}  // namespace

struct LinearContext::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;  // w
  cublasLtMatrixLayout_t b = nullptr;  // x
  cublasLtMatrixLayout_t d = nullptr;  // y (also C)
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

absl::StatusOr<std::unique_ptr<LinearContext>> LinearContext::Create(size_t workspace_bytes) {
  std::unique_ptr<LinearContext> context(new LinearContext());
  cublasLtHandle_t handle = nullptr;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&handle));
  context->handle_ = handle;
  if (workspace_bytes > 0) {
    MLA_CUDA_RETURN_IF_ERROR(cudaMalloc(&context->workspace_, workspace_bytes));
    context->workspace_bytes_ = workspace_bytes;
  }
  return context;
}

LinearContext::~LinearContext() {
  plans_.clear();
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(AsHandle(handle_));
}

absl::StatusOr<const LinearContext::Plan*> LinearContext::GetPlan(int64_t rows, int64_t in,
                                                                  int64_t out) {
  const auto key = std::make_tuple(rows, in, out);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();

  auto plan = std::make_unique<Plan>();
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T;
  const cublasOperation_t transb = CUBLAS_OP_N;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, in, out, in));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, in, rows, in));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan->d, CUDA_R_32F, out, rows, out));

  cublasLtMatmulPreference_t preference = nullptr;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t max_workspace = workspace_bytes_;
  cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulAlgoGetHeuristic(AsHandle(handle_), plan->op, plan->a, plan->b,
                                            plan->d, plan->d, preference, 1, &result, &found);
  }
  cublasLtMatmulPreferenceDestroy(preference);
  MLA_CUBLAS_RETURN_IF_ERROR(status);
  if (found == 0) {
    return absl::UnimplementedError(absl::StrCat("Linear: cuBLASLt has no algorithm for rows=",
                                                 rows, " in=", in, " out=", out));
  }
  plan->algo = result.algo;
  const Plan* ptr = plan.get();
  plans_.emplace(key, std::move(plan));
  return ptr;
}

absl::Status Linear(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                    int64_t in, int64_t out, float* y, cudaStream_t stream) {
  if (rows == 0 || out == 0) return absl::OkStatus();
  absl::StatusOr<const LinearContext::Plan*> plan = context.GetPlan(rows, in, out);
  if (!plan.ok()) return plan.status();
  const float alpha = 1.0f;
  const float beta = 0.0f;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
      AsHandle(context.handle_), (*plan)->op, &alpha, w, (*plan)->a, x, (*plan)->b, &beta, y,
      (*plan)->d, y, (*plan)->d, &(*plan)->algo, context.workspace_, context.workspace_bytes_,
      stream));
  return LaunchStatus("cublasLtMatmul");
}

}  // namespace mla::kernels::cuda
