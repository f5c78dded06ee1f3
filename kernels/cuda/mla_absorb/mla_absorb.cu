// MlaAbsorbQuery / MlaUnabsorbOutput on the GPU (see mla_absorb.h for the contract):
//
//   q_abs[t, h, 0:L]  = W_UK_h^T q^N[t, h]    W_UK_h = wkv_b rows h*(N+V) + [0, N)      [N, L]
//   q_abs[t, h, L:]   = q^R[t, h]
//   out[t, h]         = W_UV_h latent[t, h]   W_UV_h = wkv_b rows h*(N+V) + N + [0, V)   [V, L]
// with L = d_latent, N = d_nope, V = d_v, R = d_rope; t < tokens, h < heads.
//
// Each is one cuBLASLt strided-batched GEMM, batch = heads, bf16 x bf16 -> fp32, fp32 compute.
// cuBLASLt is column-major; a row-major [R, C] matrix with row stride ld is a column-major
// [C, R] one with the same ld. Per head (batch entry):
//   absorb:   D [L x tokens] (ld heads*(L+R), stride L+R)  = A [L x N] (W_UK_h as stored, ld L,
//             op N, stride (N+V)*L) * B [N x tokens] (bf16 q^N, ld heads*N, stride N)
//   unabsorb: D [V x tokens] (ld heads*V, stride V) = op_T(A) with A [L x V] (W_UV_h as stored,
//             ld L, op T, stride (N+V)*L) * B [L x tokens] (bf16 latent, ld heads*L, stride L)
// Before the GEMM one elementwise kernel rounds the activation to bf16 into the workspace
// (absorb: q^N only, and it copies q^R into q_abs[..., L:]; unabsorb: CastToBf16). The GEMM
// writes only q_abs[..., 0:L] (beta = 0, C not read), so the two writes are disjoint.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/cublas_status.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/linear/linear.h"
#include "kernels/cuda/mla_absorb/mla_absorb.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;
constexpr uint32_t kMinAlignmentBytes = 16;  // what the ops REQUIRE of every pointer
constexpr int64_t kElementsPer16Bytes = 8;   // bf16

unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// For row r = t * heads + h and column c < N + R of q:
//   c < N:  q_nope[r, c] = bf16(q[r, c]);   else  q_abs[r, L + c - N] = q[r, c].
__global__ void __launch_bounds__(kThreads)
    SplitQueryKernel(const float* q, int64_t rows, int64_t d_nope, int64_t d_rope,
                     int64_t d_latent, bf16* q_nope, float* q_abs) {
  const int64_t d_qk = d_nope + d_rope;
  const int64_t d_cache = d_latent + d_rope;
  const int64_t total = rows * d_qk;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = i / d_qk;
    const int64_t c = i % d_qk;
    if (c < d_nope) {
      q_nope[r * d_nope + c] = ToBf16(q[i]);
    } else {
      q_abs[r * d_cache + d_latent + (c - d_nope)] = q[i];
    }
  }
}

absl::Status ValidateDims(const char* op, const MlaDims& dims) {
  struct Field {
    const char* name;
    int64_t value;
    bool may_be_zero;
  };
  for (const Field& f : {Field{"heads", dims.heads, false}, Field{"d_latent", dims.d_latent, false},
                         Field{"d_nope", dims.d_nope, false}, Field{"d_v", dims.d_v, false},
                         Field{"d_rope", dims.d_rope, true}}) {
    if (f.value < 0 || (f.value == 0 && !f.may_be_zero)) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": dims.", f.name, " must be ", f.may_be_zero ? ">= 0" : "> 0",
                       ", got ", f.value));
    }
    if (f.value % kElementsPer16Bytes != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          op, ": dims.", f.name, " must be a multiple of 8 (16-byte bf16 rows), got ", f.value));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWorkspace(const char* op, const void* workspace, size_t bytes) {
  if (bytes > 0 && (workspace == nullptr ||
                    reinterpret_cast<uintptr_t>(workspace) % kMinAlignmentBytes != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": needs a 16-byte aligned workspace of ", bytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// A column-major layout of `batch` matrices [rows x cols] with leading dimension ld, `stride`
// elements apart.
absl::Status MakeBatchedLayout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows,
                               int64_t cols, int64_t ld, int32_t batch, int64_t stride) {
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(rows),
                                                        static_cast<uint64_t>(cols), ld));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
      *layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
  MLA_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
      *layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<MlaAbsorbContext>> MlaAbsorbContext::Create(size_t workspace_bytes) {
  std::unique_ptr<MlaAbsorbContext> context(new MlaAbsorbContext());
  absl::StatusOr<std::unique_ptr<CublasLtSession>> session =
      CublasLtSession::Create(workspace_bytes);
  if (!session.ok()) return session.status();
  context->session_ = std::move(*session);
  return context;
}

MlaAbsorbContext::~MlaAbsorbContext() = default;

absl::StatusOr<const MlaAbsorbContext::Plan*> MlaAbsorbContext::GetPlan(Op op, int64_t tokens,
                                                                        const MlaDims& dims) {
  const auto key = std::make_tuple(op, tokens, dims.heads, dims.d_latent, dims.d_rope,
                                   dims.d_nope, dims.d_v);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();

  const int32_t heads = static_cast<int32_t>(dims.heads);
  const int64_t head_block = (dims.d_nope + dims.d_v) * dims.d_latent;  // wkv_b rows per head
  auto plan = std::make_unique<Plan>();
  MatmulPlan& gemm = plan->gemm;
  if (absl::Status st =
          gemm.CreateOp(op == Op::kAbsorbQuery ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N);
      !st.ok()) {
    return st;
  }
  if (op == Op::kAbsorbQuery) {
    // D [L x tokens] = W_UK_h (stored [L x N]) * q^N [N x tokens].
    plan->a_offset = 0;
    if (absl::Status s = MakeBatchedLayout(&gemm.a, CUDA_R_16BF, dims.d_latent, dims.d_nope,
                                           dims.d_latent, heads, head_block);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = MakeBatchedLayout(&gemm.b, CUDA_R_16BF, dims.d_nope, tokens,
                                           dims.heads * dims.d_nope, heads, dims.d_nope);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = MakeBatchedLayout(&gemm.d, CUDA_R_32F, dims.d_latent, tokens,
                                           dims.heads * dims.d_cache(), heads, dims.d_cache());
        !s.ok()) {
      return s;
    }
  } else {
    // D [V x tokens] = (W_UV_h stored [L x V])^T * latent [L x tokens].
    plan->a_offset = dims.d_nope * dims.d_latent;
    if (absl::Status s = MakeBatchedLayout(&gemm.a, CUDA_R_16BF, dims.d_latent, dims.d_v,
                                           dims.d_latent, heads, head_block);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = MakeBatchedLayout(&gemm.b, CUDA_R_16BF, dims.d_latent, tokens,
                                           dims.heads * dims.d_latent, heads, dims.d_latent);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = MakeBatchedLayout(&gemm.d, CUDA_R_32F, dims.d_v, tokens,
                                           dims.heads * dims.d_v, heads, dims.d_v);
        !s.ok()) {
      return s;
    }
  }

  if (absl::Status st = session_->ChooseAlgorithm(
          gemm, kMinAlignmentBytes,
          absl::StrCat(op == Op::kAbsorbQuery ? "MlaAbsorbQuery" : "MlaUnabsorbOutput",
                       " tokens=", tokens, " heads=", dims.heads));
      !st.ok()) {
    return st;
  }
  const Plan* ptr = plan.get();
  plans_.emplace(key, std::move(plan));
  return ptr;
}

absl::Status MlaAbsorbContext::RunGemm(Op op, const bf16* activation, const bf16* wkv_b,
                                       int64_t tokens, const MlaDims& dims, float* out,
                                       cudaStream_t stream) {
  absl::StatusOr<const Plan*> plan = GetPlan(op, tokens, dims);
  if (!plan.ok()) return plan.status();
  return session_->Matmul((*plan)->gemm, wkv_b + (*plan)->a_offset, activation, out, stream,
                          "cublasLtMatmul (MLA per-head GEMM)");
}

size_t MlaAbsorbQueryWorkspaceBytes(int64_t tokens, const MlaDims& dims) {
  return static_cast<size_t>(tokens * dims.heads * dims.d_nope) * sizeof(bf16);
}

size_t MlaUnabsorbOutputWorkspaceBytes(int64_t tokens, const MlaDims& dims) {
  return static_cast<size_t>(tokens * dims.heads * dims.d_latent) * sizeof(bf16);
}

absl::Status MlaAbsorbQuery(MlaAbsorbContext& context, const float* q, const bf16* wkv_b,
                            int64_t tokens, const MlaDims& dims, void* workspace, float* q_abs,
                            cudaStream_t stream) {
  if (absl::Status s = ValidateDims("MlaAbsorbQuery", dims); !s.ok()) return s;
  if (tokens == 0) return absl::OkStatus();
  if (absl::Status s = ValidateWorkspace("MlaAbsorbQuery", workspace,
                                         MlaAbsorbQueryWorkspaceBytes(tokens, dims));
      !s.ok()) {
    return s;
  }
  bf16* q_nope = static_cast<bf16*>(workspace);
  const int64_t rows = tokens * dims.heads;
  SplitQueryKernel<<<GridFor(rows * dims.d_qk()), kThreads, 0, stream>>>(
      q, rows, dims.d_nope, dims.d_rope, dims.d_latent, q_nope, q_abs);
  if (absl::Status s = LaunchStatus("SplitQueryKernel"); !s.ok()) return s;
  return context.RunGemm(MlaAbsorbContext::Op::kAbsorbQuery, q_nope, wkv_b, tokens, dims, q_abs,
                         stream);
}

absl::Status MlaUnabsorbOutput(MlaAbsorbContext& context, const float* latent_out,
                               const bf16* wkv_b, int64_t tokens, const MlaDims& dims,
                               void* workspace, float* out, cudaStream_t stream) {
  if (absl::Status s = ValidateDims("MlaUnabsorbOutput", dims); !s.ok()) return s;
  if (tokens == 0) return absl::OkStatus();
  if (absl::Status s = ValidateWorkspace("MlaUnabsorbOutput", workspace,
                                         MlaUnabsorbOutputWorkspaceBytes(tokens, dims));
      !s.ok()) {
    return s;
  }
  bf16* latent = static_cast<bf16*>(workspace);
  if (absl::Status s = CastToBf16(latent_out, tokens * dims.heads * dims.d_latent, latent, stream);
      !s.ok()) {
    return s;
  }
  return context.RunGemm(MlaAbsorbContext::Op::kUnabsorbOutput, latent, wkv_b, tokens, dims, out,
                         stream);
}

}  // namespace mla::kernels::cuda
