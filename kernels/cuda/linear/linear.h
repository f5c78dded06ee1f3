// Linear on the GPU through cuBLASLt: y[r, o] = sum_i x[r, i] * w[o, i].
//
// Dtypes (the choice, and why): x [rows, in] bf16, w [out, in] bf16 (PyTorch's layout, as
// loaded), y [rows, out] float32; products exact, accumulation float32 on the tensor cores
// (CUBLAS_COMPUTE_32F). bf16 activations halve the bytes the GEMM reads and are what the tensor
// cores take; the float32 output keeps the residual stream and the norms in float32 as the CPU
// does. LinearBf16Out is the same GEMM with y rounded once to bf16, for outputs that feed
// another bf16 tensor-core op (the prefill attention's up-projected K and V). Callers holding
// float32 activations round them first with CastToBf16 (one extra pass, 6 bytes per element).
// The CPU twin, cpu::Linear, computes the same function when its x is the bf16 values widened
// to float; tests compare on such inputs.
//
// LinearContext owns a CublasLtSession (handle + device workspace) and a cache of the matmul
// plan (descriptors + chosen algorithm) per (rows, in, out). It is thread-compatible, not
// thread-safe: one context per host thread / stream. Linear() never allocates device memory or
// synchronises, so it can be captured in a CUDA graph (after a first, uncaptured call per shape
// has filled the plan cache, since the heuristic query is host work).
#ifndef MLASERVE_KERNELS_CUDA_LINEAR_LINEAR_H_
#define MLASERVE_KERNELS_CUDA_LINEAR_LINEAR_H_

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

namespace mla::kernels::cuda {

class LinearContext {
 public:
  // The workspace cuBLASLt may use for split-K and similar algorithms.
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;

  static absl::StatusOr<std::unique_ptr<LinearContext>> Create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~LinearContext();
  LinearContext(const LinearContext&) = delete;
  LinearContext& operator=(const LinearContext&) = delete;

 private:
  LinearContext() = default;
  friend absl::Status Linear(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                             int64_t in, int64_t out, float* y, cudaStream_t stream);
  friend absl::Status LinearBf16Out(LinearContext& context, const bf16* x, const bf16* w,
                                    int64_t rows, int64_t in, int64_t out, bf16* y,
                                    cudaStream_t stream);
  friend absl::Status LinearF32(LinearContext& context, const float* x, const float* w,
                                int64_t rows, int64_t in, int64_t out, float* y,
                                cudaStream_t stream);
  // The plan of one shape with operands of `dtype` (CUDA_R_16BF or CUDA_R_32F) and an output of
  // `out_dtype` (CUDA_R_32F, or CUDA_R_16BF with bf16 operands).
  absl::StatusOr<const MatmulPlan*> GetPlan(int64_t rows, int64_t in, int64_t out,
                                            cudaDataType_t dtype, cudaDataType_t out_dtype);
  // y = x w^T with that plan (nothing for an empty product); `what` names the call in errors.
  absl::Status Run(const void* x, const void* w, int64_t rows, int64_t in, int64_t out, void* y,
                   cudaDataType_t dtype, cudaDataType_t out_dtype, cudaStream_t stream,
                   const char* what);

  std::unique_ptr<CublasLtSession> session_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int, int>, std::unique_ptr<MatmulPlan>> plans_;
};

// y = x w^T (see above). REQUIRES: x, w, y 16-byte aligned; y does not alias x or w.
absl::Status Linear(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                    int64_t in, int64_t out, float* y, cudaStream_t stream);

// y = bf16(x w^T): as Linear (bf16 operands, float32 accumulation), then each output rounded to
// bf16 by cuBLASLt's epilogue (round to nearest). Same requirements as Linear.
absl::Status LinearBf16Out(LinearContext& context, const bf16* x, const bf16* w, int64_t rows,
                           int64_t in, int64_t out, bf16* y, cudaStream_t stream);

// y[i] = bf16(x[i]) rounded to nearest even, i < n: float32 activations into Linear's x.
absl::Status CastToBf16(const float* x, int64_t n, bf16* y, cudaStream_t stream);

// y = x w^T all in float32: x [rows, in] and w [out, in] float32 (a bf16 weight widened exactly
// by WidenBf16), y [rows, out]; CUBLAS_COMPUTE_32F without TF32, so only the summation order
// differs from cpu::Linear on the same x and weight. For small GEMMs whose inputs must not be
// rounded: the MoE router (DeepSeek computes the gate in float32). Same requirements as Linear.
absl::Status LinearF32(LinearContext& context, const float* x, const float* w, int64_t rows,
                       int64_t in, int64_t out, float* y, cudaStream_t stream);

// y[i] = float(x[i]), exact, i < n.
absl::Status WidenBf16(const bf16* x, int64_t n, float* y, cudaStream_t stream);

}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_LINEAR_LINEAR_H_
