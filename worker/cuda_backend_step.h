// CudaStepPlan: what the CUDA backend's BeginStep makes of a FlatBatch, and keeps for the step's
// layers: the index arrays on the device and the plans of the two attention forms.
//
// Begin copies the arrays (tokens, positions, slots, sample rows, q_start, decode q_start,
// context lengths, block tables) into one piece of the scratch arena with one asynchronous copy
// from a pinned staging buffer (the next Begin waits for that copy before refilling the buffer),
// and returns them as a StepIndex laid out exactly as FlatBatch::Prefill() / Decode() lay out the
// host arrays. The attention plans need the model's local head count, which BeginStep does not
// know, so they are made on the step's first MlaPrefillAttention / MlaDecodeAttention call, from
// the host's copy of the step (token counts, context lengths), together with a device workspace
// from the arena; every later layer of the step reuses both (its ops run in stream order, so one
// workspace serves them all). A call for other dims re-plans.
//
// Thread-compatible (the backend's one thread); the device must be current for Begin.
#ifndef MLASERVE_WORKER_CUDA_BACKEND_STEP_H_
#define MLASERVE_WORKER_CUDA_BACKEND_STEP_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/cuda/mla_prefill/mla_prefill.h"
#include "kernels/mla_params.h"
#include "worker/backend.h"
#include "worker/cuda_backend_arena.h"
#include "worker/flat_batch.h"

namespace mla {

class CudaStepPlan {
 public:
  // num_sms: the device's SM count (PlanMlaDecode's). Allocates the staging buffer's event.
  static absl::StatusOr<std::unique_ptr<CudaStepPlan>> Create(int num_sms);
  ~CudaStepPlan();  // waits for the last upload, frees the staging buffer
  CudaStepPlan(const CudaStepPlan&) = delete;
  CudaStepPlan& operator=(const CudaStepPlan&) = delete;

  // Uploads the step's arrays into `arena` (reset by the caller) on `stream`; forgets the last
  // step's plans. The StepIndex is valid until the arena's next Reset.
  absl::StatusOr<StepIndex> Begin(const FlatBatch& batch, CudaScratchArena& arena,
                                  cudaStream_t stream);

  // The step's plan and workspace for `dims` (made on first use). FAILED_PRECONDITION before
  // Begin; INVALID_ARGUMENT when `batch` is not this step's StepIndex::prefill / decode.
  struct PrefillRun {
    const kernels::cuda::MlaPrefillPlan* plan = nullptr;
    void* workspace = nullptr;  // plan->workspace_bytes, 256-byte aligned
  };
  absl::StatusOr<PrefillRun> Prefill(const kernels::MlaDims& dims,
                                     const kernels::RaggedBatch& batch, CudaScratchArena& arena);
  struct DecodeRun {
    const kernels::cuda::MlaDecodePlan* plan = nullptr;
    void* workspace = nullptr;  // plan->workspace_bytes (null when 0), 256-byte aligned
  };
  absl::StatusOr<DecodeRun> Decode(const kernels::MlaDims& dims,
                                   const kernels::RaggedBatch& batch, CudaScratchArena& arena);

 private:
  explicit CudaStepPlan(int num_sms) : num_sms_(num_sms) {}
  absl::StatusOr<char*> Staging(int64_t bytes);  // waits for the last upload first

  int num_sms_;
  bool begun_ = false;
  StepIndex index_;
  // The host's facts the plans need.
  int64_t prefill_tokens_ = 0, prefill_context_tokens_ = 0;
  std::vector<int32_t> decode_q_start_, decode_context_lens_;
  // This step's plans (none until the first attention call) and their workspaces.
  std::optional<kernels::cuda::MlaPrefillPlan> prefill_plan_;
  kernels::MlaDims prefill_dims_;
  void* prefill_workspace_ = nullptr;
  std::unique_ptr<kernels::cuda::MlaDecodePlan> decode_plan_;
  kernels::MlaDims decode_dims_;
  void* decode_workspace_ = nullptr;
  // Pinned host memory the arrays are packed into, and the event of its last upload.
  char* staging_ = nullptr;
  int64_t staging_bytes_ = 0;
  cudaEvent_t uploaded_ = nullptr;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_CUDA_BACKEND_STEP_H_
