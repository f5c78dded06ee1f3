// The per-head projections of absorbed MLA on the GPU (twins of cpu::MlaAbsorbQuery and
// cpu::MlaUnabsorbOutput, MODEL.md §3.3 steps 2 and 6), as cuBLASLt strided-batched GEMMs with
// one batch entry per head:
//
//   MlaAbsorbQuery:    q_abs[t, h] = [W_UK_h^T q^N[t, h] ; q^R[t, h]]     (d_latent + d_rope)
//   MlaUnabsorbOutput: out[t, h]   = W_UV_h latent_out[t, h]               (d_v)
//
// Shapes (the CPU twins'): q [tokens, heads, d_nope + d_rope] f32, latent_out [tokens, heads,
// d_latent] f32, wkv_b [heads * (d_nope + d_v), d_latent] bf16 (per head W_UK then W_UV),
// q_abs [tokens, heads, d_latent + d_rope] f32, out [tokens, heads, d_v] f32.
//
// Numerics: bf16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F). The float activation (q^N,
// or latent_out) is rounded to bf16 (nearest even) into the caller's workspace first; the
// weights are bf16 already. So the result equals the CPU twin's on the bf16-rounded activation
// up to summation order, and the CPU twin's on the float activation within bf16-operand error
// (~1e-3 relative). q^R is copied exactly.
//
// MlaAbsorbContext owns a CublasLtSession (handle + workspace) and the cached GEMM plans per
// (op, tokens, dims). Thread-compatible: one context per host thread / stream. The ops never
// allocate or synchronise, so they can be captured in a CUDA graph after a first, uncaptured
// call per shape has filled the plan cache (the heuristic query is host work).
#ifndef MLASERVE_KERNELS_CUDA_MLA_ABSORB_MLA_ABSORB_H_
#define MLASERVE_KERNELS_CUDA_MLA_ABSORB_MLA_ABSORB_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/bf16.h"
#include "kernels/cuda/cublas_lt_session.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda {

class MlaAbsorbContext {
 public:
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;

  static absl::StatusOr<std::unique_ptr<MlaAbsorbContext>> Create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~MlaAbsorbContext();
  MlaAbsorbContext(const MlaAbsorbContext&) = delete;
  MlaAbsorbContext& operator=(const MlaAbsorbContext&) = delete;

  enum class Op { kAbsorbQuery, kUnabsorbOutput };
  struct Plan {          // one (op, shape)
    MatmulPlan gemm;
    int64_t a_offset = 0;  // elements from wkv_b to head 0's weight block
  };

  // Runs the per-head GEMM of `op` (the activation already bf16 in `activation`).
  absl::Status RunGemm(Op op, const bf16* activation, const bf16* wkv_b, int64_t tokens,
                       const MlaDims& dims, float* out, cudaStream_t stream);

 private:
  MlaAbsorbContext() = default;
  absl::StatusOr<const Plan*> GetPlan(Op op, int64_t tokens, const MlaDims& dims);

  std::unique_ptr<CublasLtSession> session_;
  std::map<std::tuple<Op, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>,
           std::unique_ptr<Plan>>
      plans_;
};

// Bytes of device workspace the two ops need: the bf16 copy of their activation.
size_t MlaAbsorbQueryWorkspaceBytes(int64_t tokens, const MlaDims& dims);
size_t MlaUnabsorbOutputWorkspaceBytes(int64_t tokens, const MlaDims& dims);

// REQUIRES: every pointer 16-byte aligned; workspace holds the bytes above; outputs do not alias
// inputs. Returns INVALID_ARGUMENT (naming the field) for dims that are not positive or not
// multiples of 8 (16-byte rows for cuBLASLt).
absl::Status MlaAbsorbQuery(MlaAbsorbContext& context, const float* q, const bf16* wkv_b,
                            int64_t tokens, const MlaDims& dims, void* workspace, float* q_abs,
                            cudaStream_t stream);

absl::Status MlaUnabsorbOutput(MlaAbsorbContext& context, const float* latent_out,
                               const bf16* wkv_b, int64_t tokens, const MlaDims& dims,
                               void* workspace, float* out, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_MLA_ABSORB_MLA_ABSORB_H_
