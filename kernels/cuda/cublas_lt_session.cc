#include "kernels/cuda/cublas_lt_session.h"

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cublas_status.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda {

MatmulPlan::~MatmulPlan() {
  if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
  if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
  if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
  if (op != nullptr) cublasLtMatmulDescDestroy(op);
}

absl::Status MatmulPlan::CreateOp(cublasOperation_t transa, cublasOperation_t transb) {
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  MLA_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  MLA_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CublasLtSession>> CublasLtSession::Create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtSession> session(new CublasLtSession());
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&session->handle_));
  if (workspace_bytes > 0) {
    MLA_CUDA_RETURN_IF_ERROR(cudaMalloc(&session->workspace_, workspace_bytes));
    session->workspace_bytes_ = workspace_bytes;
  }
  return session;
}

CublasLtSession::~CublasLtSession() {
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

absl::Status CublasLtSession::ChooseAlgorithm(MatmulPlan& plan, uint32_t min_alignment_bytes,
                                              const std::string& what) const {
  cublasLtMatmulPreference_t preference = nullptr;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t max_workspace = workspace_bytes_;
  cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace));
  if (min_alignment_bytes > 0) {
    for (const cublasLtMatmulPreferenceAttributes_t attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      if (status != CUBLAS_STATUS_SUCCESS) break;
      status = cublasLtMatmulPreferenceSetAttribute(preference, attr, &min_alignment_bytes,
                                                    sizeof(min_alignment_bytes));
    }
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (status == CUBLAS_STATUS_SUCCESS) {
    status = cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.a, plan.b, plan.d, plan.d,
                                            preference, 1, &result, &found);
  }
  cublasLtMatmulPreferenceDestroy(preference);
  MLA_CUBLAS_RETURN_IF_ERROR(status);
  if (found == 0) {
    return absl::UnimplementedError(absl::StrCat(what, ": cuBLASLt has no algorithm"));
  }
  plan.algo = result.algo;
  return absl::OkStatus();
}

absl::Status CublasLtSession::Matmul(const MatmulPlan& plan, const void* a, const void* b,
                                     void* d, cudaStream_t stream, const char* what) const {
  const float alpha = 1.0f;
  const float beta = 0.0f;
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(handle_, plan.op, &alpha, a, plan.a, b, plan.b,
                                            &beta, d, plan.d, d, plan.d, &plan.algo, workspace_,
                                            workspace_bytes_, stream));
  return LaunchStatus(what);
}

}  // namespace mla::kernels::cuda
