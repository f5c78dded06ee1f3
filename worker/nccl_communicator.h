// NcclCommunicator: the GPU backend of Communicator, NCCL on device buffers, one process (one
// thread) per GPU.
//
// The communicator is non-blocking (ncclConfig_t.blocking = 0): every NCCL call returns at once,
// and this class then polls ncclCommGetAsyncError and its stream (cudaStreamQuery) until the work
// is done or the timeout passes. On timeout it calls ncclCommAbort and returns DeadlineExceeded,
// so a peer that died or never made the matching call cannot hang the caller; any other NCCL or
// CUDA failure aborts too and returns Unavailable (NCCL remote/system errors) or Internal. After
// an error the communicator refuses further calls (FailedPrecondition) and must be rebuilt.
//
// By default all work runs on the communicator's own stream (stream()), and every call returns
// once that stream is idle, so device buffers may be read right after. Recording mode
// (EnqueueOn(s)): the calls are enqueued on the caller's stream s instead, after the work already
// there, and return once NCCL has enqueued them without waiting for them to run -- what a CUDA
// graph capture of s needs (a capture must not wait). The work then finishes in s's order, and
// AwaitStream bounds the wait for it (after a graph launch): a missing peer ends in
// DeadlineExceeded and aborted communicators, never a hang.
//
// CUDA graphs that recorded a communicator's collectives hold it: NCCL's abort and destroy wait
// until every such graph is destroyed. The graphs' owner therefore registers a release
// (SetBeforeAbort), which the communicator calls before it aborts (after an error or timeout)
// and before it is destroyed. Thread-compatible.
#ifndef MLASERVE_WORKER_NCCL_COMMUNICATOR_H_
#define MLASERVE_WORKER_NCCL_COMMUNICATOR_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/communicator.h"

namespace mla {

// A fresh NCCL unique id (ncclGetUniqueId) as its NCCL_UNIQUE_ID_BYTES bytes, for the
// rendezvous store (Rendezvous in worker.proto). NCCL's bootstrap root runs in the calling
// process, which must stay alive until every rank has called NcclCommunicator::Create.
absl::StatusOr<std::string> MakeNcclUniqueId();

class NcclCommunicator final : public Communicator {
 public:
  // Joins the group of `size` ranks named by `unique_id` (MakeNcclUniqueId's bytes) as `rank`, on
  // CUDA device `device` (made current on the calling thread). Every rank must call it; it
  // returns DeadlineExceeded if the group is not complete within `timeout`, which also bounds
  // every later call.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      const std::string& unique_id, int rank, int size, int device,
      std::chrono::milliseconds timeout);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // Every pointer is a device pointer on this communicator's device.
  absl::Status AllReduceSum(float* data, int64_t count) override;
  absl::Status AllReduceSum(double* data, int64_t count) override;
  absl::Status AllGather(const float* in, int64_t count, float* out) override;
  absl::Status Broadcast(float* data, int64_t count, int root) override;
  absl::Status Send(const float* data, int64_t count, int peer) override;
  absl::Status Recv(float* data, int64_t count, int peer) override;
  absl::Status Barrier() override;

  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  // Recording mode on `stream` (a stream of this communicator's device), or back to the
  // communicator's own stream when null. See above.
  void EnqueueOn(cudaStream_t stream) { enqueue_on_ = stream; }
  // Polls until `stream` is idle and no communicator of `comms` reports an error, within the
  // longest of their timeouts; on an error or the timeout aborts every one of them (later calls
  // fail with FailedPrecondition) and returns DeadlineExceeded (timeout), Unavailable (a peer's
  // NCCL failure) or Internal. E.g. after launching a graph that holds their collectives.
  static absl::Status AwaitStream(absl::Span<NcclCommunicator* const> comms,
                                  cudaStream_t stream, const char* what);
  // `release` destroys (or lets go of) every CUDA graph holding this communicator's collectives;
  // called at most once, just before an abort or the destructor (see above). Null: none. The
  // owner of the graphs clears it if it goes first.
  void SetBeforeAbort(std::function<void()> release) { before_abort_ = std::move(release); }

 private:
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream, float* scratch, int rank, int size,
                   int device, std::chrono::milliseconds timeout);
  // The stream the calls enqueue on (stream_, or enqueue_on_ in recording mode).
  cudaStream_t Target() const { return enqueue_on_ != nullptr ? enqueue_on_ : stream_; }
  // Checks the return of an NCCL enqueue call, then waits until NCCL has enqueued it (recording
  // mode) or until stream_ is idle.
  absl::Status Finish(const char* what, ncclResult_t launched);
  // Polls until NCCL has enqueued the calls made so far (no longer ncclInProgress); aborts on an
  // error or the timeout.
  absl::Status WaitEnqueued(const char* what);
  absl::Status Usable() const;
  // Calls and clears before_abort_.
  void ReleaseHolders();
  // Releases the holders of every communicator of `comms`, then aborts them all at once and
  // records `error` as the reason their later calls fail.
  static void AbortAll(absl::Span<NcclCommunicator* const> comms, const absl::Status& error);
  // AbortAll of this one; returns `error`.
  absl::Status Fail(absl::Status error);

  ncclComm_t comm_;
  cudaStream_t stream_;
  cudaStream_t enqueue_on_ = nullptr;  // recording mode's stream, else null
  float* scratch_;  // one device float, for Barrier
  int rank_, size_, device_;
  std::chrono::milliseconds timeout_;
  absl::Status broken_;  // the first error; OK while usable
  std::function<void()> before_abort_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_NCCL_COMMUNICATOR_H_
