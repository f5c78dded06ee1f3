// CudaStepGraphs: the CUDA backend's recorded steps (Backend's step graphs, worker/backend.h):
// a decode step's ops captured from the backend's stream as a CUDA graph, kept per GraphShape,
// and replayed in later steps of that shape.
//
// A recording reads the step's arrays and writes scratch at the addresses it was recorded with,
// so a replay is valid only while those stay put. Each recording keeps (a) the scratch arena's
// mark at its end (the block, by generation, and how far the recording wrote), (b) the generation
// of the backend's op workspace, and (c) the address of the recorded step's arrays; Replay runs
// it only when all three still hold (BeginStep of a step of the same shape puts the arrays at
// the same address of the same block) and then advances the arena past what it writes; a
// recording whose memory moved is dropped. A recording is kept only if the memory it wrote did
// not move while it was made (the arena grew, or the workspace was replaced, during capture).
//
// Capture is thread-local (cudaStreamCaptureModeThreadLocal): an op that cannot be captured (a
// host sync, e.g. to grow a buffer) fails, and so does the capture, instead of running.
// Collectives are recorded too (the backend puts the NCCL communicators in recording mode on the
// stream and names them with Uses); a replay of a recording that holds collectives returns only
// once the stream is idle, polling within the communicators' timeouts
// (NcclCommunicator::AwaitStream): a peer that never joins aborts them and fails the replay
// instead of hanging the worker. Since NCCL's abort and destroy wait for the graphs holding a
// communicator's work, each communicator named by Uses gets a release (SetBeforeAbort) that
// drops the recordings holding it; this object clears those releases when it goes first.
// Thread-compatible (the backend's one thread), on the backend's device.
#ifndef MLASERVE_WORKER_CUDA_BACKEND_GRAPHS_H_
#define MLASERVE_WORKER_CUDA_BACKEND_GRAPHS_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/cuda_backend_arena.h"
#include "worker/flat_batch.h"
#include "worker/nccl_communicator.h"

namespace mla {

class CudaStepGraphs {
 public:
  // `stream`: the backend's stream; `arena`: its scratch; both outlive this.
  CudaStepGraphs(cudaStream_t stream, CudaScratchArena* arena) : stream_(stream), arena_(arena) {}
  // Destroys the recordings (freed once any launch of them has finished) and clears the
  // communicators' releases.
  ~CudaStepGraphs();
  CudaStepGraphs(const CudaStepGraphs&) = delete;
  CudaStepGraphs& operator=(const CudaStepGraphs&) = delete;

  bool capturing() const { return capturing_; }
  // Starts capturing the stream. FAILED_PRECONDITION while capturing.
  absl::Status Begin(int64_t workspace_generation);
  // The recording being made holds a collective of `comm`. REQUIRES: capturing().
  void Uses(NcclCommunicator* comm);
  // Ends the capture and keeps it for `shape` (replacing any recording of it) if `keep` and the
  // capture is valid and its memory did not move; returns whether it was kept. `step_arrays`:
  // the recorded step's StepIndex::tokens. FAILED_PRECONDITION when not capturing.
  absl::StatusOr<bool> End(const GraphShape& shape, bool keep, int64_t workspace_generation,
                           const void* step_arrays);
  // Launches the recording of `shape` on the stream if its memory is still where it was
  // (see above); false, launching nothing, otherwise. With collectives, waits for it (above).
  absl::StatusOr<bool> Replay(const GraphShape& shape, int64_t workspace_generation,
                              const void* step_arrays);

  int64_t size() const { return static_cast<int64_t>(graphs_.size()); }

 private:
  struct Recording {
    cudaGraphExec_t exec = nullptr;
    CudaScratchArena::Mark end;
    int64_t workspace_generation = 0;
    const void* step_arrays = nullptr;
    std::vector<NcclCommunicator*> comms;  // whose collectives it holds
  };
  void Drop(std::map<GraphShape, Recording>::iterator it);
  // Drops every recording holding `comm`'s collectives and forgets `comm` (its release).
  void Release(NcclCommunicator* comm);

  cudaStream_t stream_;
  CudaScratchArena* arena_;
  std::map<GraphShape, Recording> graphs_;
  bool capturing_ = false;
  CudaScratchArena::Mark begin_;
  std::vector<NcclCommunicator*> begin_comms_;  // Uses() of the recording being made
  std::vector<NcclCommunicator*> released_by_;  // communicators holding a release of ours
  int64_t begin_workspace_generation_ = 0;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_CUDA_BACKEND_GRAPHS_H_
