// CudaStepPlan: what the CUDA backend's BeginStep makes of a FlatBatch, and keeps for the step's
// layers: the index arrays on the device and the plans of the two attention forms.
//
// Begin copies the arrays (tokens, positions, slots, sample rows, q_start, decode q_start,
// context lengths, block tables) and the device copy of the decode attention's plan into one
// piece of the scratch arena with one asynchronous copy from a pinned staging buffer (the next
// Begin waits for that copy before refilling the buffer), and returns them as a StepIndex laid
// out exactly as FlatBatch::Prefill() / Decode() lay out the host arrays. Both attention plans
// are made by Begin (for StepOptions::attention), with their workspaces from the arena right
// after the arrays, before any layer's scratch (which a layer releases for the next: the
// workspaces must outlive that). Every layer of the step reuses them (their ops run in stream
// order, so one workspace serves them all). For a step of a graph shape the decode launch is
// sized for the shape's bounds, so that the same addresses and grid serve every later step of
// that shape (the plan itself is read from device memory).
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
#include "kernels/cuda/mla_decode/mla_decode.h"
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
  // step's plans. The StepIndex is valid until the arena's next Reset. INVALID_ARGUMENT for a
  // step with sequences and options.attention.heads <= 0.
  absl::StatusOr<StepIndex> Begin(const FlatBatch& batch, const StepOptions& options,
                                  CudaScratchArena& arena, cudaStream_t stream);
  const StepIndex& index() const { return index_; }  // the last Begin's

  // The step's plan and workspace. FAILED_PRECONDITION before Begin; INVALID_ARGUMENT when
  // `batch` is not this step's StepIndex::prefill / decode, or `dims` (decode: dims.heads) are
  // not those Begin planned for.
  struct PrefillRun {
    const kernels::cuda::MlaPrefillPlan* plan = nullptr;
    void* workspace = nullptr;  // plan->workspace_bytes, 256-byte aligned
  };
  absl::StatusOr<PrefillRun> Prefill(const kernels::MlaDims& dims,
                                     const kernels::RaggedBatch& batch);
  struct DecodeRun {
    const kernels::cuda::MlaDecodePlan* plan = nullptr;
    kernels::cuda::MlaDecodeLaunch launch;  // the device plan, workspace and grid
  };
  absl::StatusOr<DecodeRun> Decode(const kernels::MlaDims& dims,
                                   const kernels::RaggedBatch& batch);

 private:
  explicit CudaStepPlan(int num_sms) : num_sms_(num_sms) {}
  absl::StatusOr<char*> Staging(int64_t bytes);  // waits for the last upload first

  int num_sms_;
  bool begun_ = false;
  StepIndex index_;
  // This step's plans and their launches.
  std::optional<kernels::cuda::MlaPrefillPlan> prefill_plan_;
  kernels::MlaDims prefill_dims_;
  void* prefill_workspace_ = nullptr;
  std::unique_ptr<kernels::cuda::MlaDecodePlan> decode_plan_;
  kernels::cuda::MlaDecodeDevicePlan device_plan_;  // staged by Begin
  kernels::cuda::MlaDecodeLaunch decode_launch_;
  // Pinned host memory the arrays are packed into, and the event of its last upload.
  char* staging_ = nullptr;
  int64_t staging_bytes_ = 0;
  cudaEvent_t uploaded_ = nullptr;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_CUDA_BACKEND_STEP_H_
