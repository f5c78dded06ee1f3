#include "worker/cuda_backend_graphs.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "kernels/cuda/cuda_status.h"
#include "worker/status_macros.h"

namespace mla {

using kernels::cuda::CudaStatus;

CudaStepGraphs::~CudaStepGraphs() {
  for (NcclCommunicator* comm : released_by_) comm->SetBeforeAbort(nullptr);
  for (auto& [shape, recording] : graphs_) cudaGraphExecDestroy(recording.exec);
}

absl::Status CudaStepGraphs::Begin(int64_t workspace_generation) {
  if (capturing_) return absl::FailedPreconditionError("BeginCapture while recording");
  begin_ = arena_->mark();
  begin_comms_.clear();
  begin_workspace_generation_ = workspace_generation;
  MLA_RETURN_IF_ERROR(
      CudaStatus(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
                 "BeginCapture: cudaStreamBeginCapture"));
  capturing_ = true;
  return absl::OkStatus();
}

void CudaStepGraphs::Uses(NcclCommunicator* comm) {
  if (std::find(begin_comms_.begin(), begin_comms_.end(), comm) == begin_comms_.end()) {
    begin_comms_.push_back(comm);
  }
  if (std::find(released_by_.begin(), released_by_.end(), comm) == released_by_.end()) {
    released_by_.push_back(comm);
    comm->SetBeforeAbort([this, comm] { Release(comm); });
  }
}

void CudaStepGraphs::Release(NcclCommunicator* comm) {
  for (auto it = graphs_.begin(); it != graphs_.end();) {
    const std::vector<NcclCommunicator*>& held = it->second.comms;
    auto next = std::next(it);
    if (std::find(held.begin(), held.end(), comm) != held.end()) Drop(it);
    it = next;
  }
  released_by_.erase(std::remove(released_by_.begin(), released_by_.end(), comm),
                     released_by_.end());
}

absl::StatusOr<bool> CudaStepGraphs::End(const GraphShape& shape, bool keep,
                                         int64_t workspace_generation, const void* step_arrays) {
  if (!capturing_) return absl::FailedPreconditionError("EndCapture without BeginCapture");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  const CudaScratchArena::Mark end = arena_->mark();
  keep = keep && ended == cudaSuccess && graph != nullptr &&
         end.block == begin_.block &&
         workspace_generation == begin_workspace_generation_;
  cudaGraphExec_t exec = nullptr;
  if (keep) keep = cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  if (graph != nullptr) cudaGraphDestroy(graph);
  cudaGetLastError();  // a failed capture's error is not the next op's
  if (!keep) return false;
  if (auto it = graphs_.find(shape); it != graphs_.end()) Drop(it);
  graphs_.emplace(shape, Recording{.exec = exec,
                                   .end = end,
                                   .workspace_generation = workspace_generation,
                                   .step_arrays = step_arrays,
                                   .comms = begin_comms_});
  return true;
}

absl::StatusOr<bool> CudaStepGraphs::Replay(const GraphShape& shape,
                                            int64_t workspace_generation,
                                            const void* step_arrays) {
  auto it = graphs_.find(shape);
  if (it == graphs_.end()) return false;
  const Recording& r = it->second;
  const CudaScratchArena::Mark now = arena_->mark();
  if (r.end.block != now.block || r.end.used < now.used ||
      r.workspace_generation != workspace_generation || r.step_arrays != step_arrays) {
    Drop(it);  // its memory moved
    return false;
  }
  MLA_RETURN_IF_ERROR(arena_->AdvanceTo(r.end));
  MLA_RETURN_IF_ERROR(CudaStatus(cudaGraphLaunch(r.exec, stream_), "Replay: cudaGraphLaunch"));
  if (r.comms.empty()) return true;
  const std::vector<NcclCommunicator*> comms = r.comms;  // a failure's release drops r
  MLA_RETURN_IF_ERROR(NcclCommunicator::AwaitStream(comms, stream_, "step graph replay"));
  return true;
}

void CudaStepGraphs::Drop(std::map<GraphShape, Recording>::iterator it) {
  cudaGraphExecDestroy(it->second.exec);  // freed once a launch in flight has finished
  graphs_.erase(it);
}

}  // namespace mla
