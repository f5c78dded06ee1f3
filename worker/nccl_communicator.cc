// NCCL-backed collectives on a non-blocking communicator. Every entry point enqueues one NCCL
// call on Target() (stream_, or the recording stream) and then Finish()es it: a bounded poll of
// the communicator's async state (and of stream_ unless recording), which aborts the
// communicator on error or timeout.
#include "worker/nccl_communicator.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status NcclError(const char* what, ncclResult_t r) {
  const std::string message = absl::StrCat(what, ": ", ncclGetErrorString(r));
  if (r == ncclRemoteError || r == ncclSystemError) return absl::UnavailableError(message);
  if (r == ncclInvalidArgument || r == ncclInvalidUsage) {
    return absl::InvalidArgumentError(message);
  }
  return absl::InternalError(message);
}

absl::Status CudaError(const char* what, cudaError_t err) {
  return absl::InternalError(
      absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
}

// Polls, spinning for the first 2 ms (a collective's latency is tens of µs) and then sleeping
// 100 µs between tries, until done() is true, it returns an error, or `deadline` passes.
// done: () -> absl::StatusOr<bool>.
template <typename Done>
absl::Status PollUntil(Done&& done, Clock::time_point deadline, const char* what,
                       std::chrono::milliseconds timeout) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    absl::StatusOr<bool> finished = done();
    if (!finished.ok()) return finished.status();
    if (*finished) return absl::OkStatus();
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": not done after ", timeout.count(), " ms (a peer is missing?)"));
    }
    if (now - start > std::chrono::milliseconds(2)) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

// Whether the communicator has finished its pending NCCL work (enqueueing, init, finalize).
absl::StatusOr<bool> NcclSettled(ncclComm_t comm, const char* what) {
  ncclResult_t state = ncclSuccess;
  const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
  if (r != ncclSuccess) return NcclError(what, r);
  if (state == ncclInProgress) return false;
  if (state != ncclSuccess) return NcclError(what, state);
  return true;
}

}  // namespace

absl::StatusOr<std::string> MakeNcclUniqueId() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) return NcclError("ncclGetUniqueId", r);
  return std::string(id.internal, sizeof(id.internal));
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, cudaStream_t stream, float* scratch,
                                   int rank, int size, int device,
                                   std::chrono::milliseconds timeout)
    : comm_(comm),
      stream_(stream),
      scratch_(scratch),
      rank_(rank),
      size_(size),
      device_(device),
      timeout_(timeout) {}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const std::string& unique_id, int rank, int size, int device,
    std::chrono::milliseconds timeout) {
  if (unique_id.size() != NCCL_UNIQUE_ID_BYTES) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL unique id has ", unique_id.size(),
                                                   " bytes, not ", NCCL_UNIQUE_ID_BYTES));
  }
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " of a group of ", size));
  }
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) return CudaError("cudaSetDevice", err);
  cudaStream_t stream = nullptr;
  err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) return CudaError("cudaStreamCreateWithFlags", err);
  float* scratch = nullptr;
  err = cudaMalloc(&scratch, sizeof(float));
  if (err != cudaSuccess) {
    cudaStreamDestroy(stream);
    return CudaError("cudaMalloc", err);
  }
  auto release = [&] {
    cudaFree(scratch);
    cudaStreamDestroy(stream);
  };

  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const Clock::time_point deadline = Clock::now() + timeout;
  const ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  absl::Status st;
  if (r != ncclSuccess && r != ncclInProgress) {
    st = NcclError("ncclCommInitRankConfig", r);
  } else {
    st = PollUntil([&] { return NcclSettled(comm, "ncclCommInitRankConfig"); }, deadline,
                   "ncclCommInitRankConfig", timeout);
  }
  if (!st.ok()) {
    if (comm != nullptr) ncclCommAbort(comm);
    release();
    return st;
  }
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(comm, stream, scratch, rank, size, device, timeout));
}

NcclCommunicator::~NcclCommunicator() {
  cudaSetDevice(device_);
  ReleaseHolders();  // a destroy, like an abort, waits for graphs holding its work to go
  if (comm_ != nullptr) {
    // A clean shutdown: finalize (flushes NCCL's pending work) then destroy; abort if the
    // finalize does not settle in time.
    const Clock::time_point deadline = Clock::now() + timeout_;
    ncclResult_t r = ncclCommFinalize(comm_);
    absl::Status st = (r == ncclSuccess || r == ncclInProgress)
                          ? PollUntil([&] { return NcclSettled(comm_, "ncclCommFinalize"); },
                                      deadline, "ncclCommFinalize", timeout_)
                          : NcclError("ncclCommFinalize", r);
    if (st.ok()) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
  }
  // After an abort a kernel may still be draining; freeing would synchronise on it. Free only
  // once the stream is idle (else leave the 4 bytes to the context's teardown).
  const Clock::time_point deadline = Clock::now() + timeout_;
  const absl::Status idle = PollUntil(
      [&]() -> absl::StatusOr<bool> {
        const cudaError_t q = cudaStreamQuery(stream_);
        if (q == cudaErrorNotReady) return false;
        if (q != cudaSuccess) return CudaError("cudaStreamQuery", q);
        return true;
      },
      deadline, "stream drain", timeout_);
  if (idle.ok()) cudaFree(scratch_);
  cudaStreamDestroy(stream_);
}

absl::Status NcclCommunicator::Usable() const {
  if (broken_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("NCCL communicator aborted after an earlier error: ", broken_.message()));
}

void NcclCommunicator::ReleaseHolders() {
  if (before_abort_) std::exchange(before_abort_, nullptr)();
}

void NcclCommunicator::AbortAll(absl::Span<NcclCommunicator* const> comms,
                                const absl::Status& error) {
  for (NcclCommunicator* c : comms) c->ReleaseHolders();
  // ncclCommAbort raises the communicator's abort flag (its kernels leave) and then waits until
  // no graph holds its work; a graph holding several communicators' work finishes only once all
  // their kernels have left, so every flag must be raised before any abort waits: one thread
  // per communicator.
  std::vector<std::thread> aborts;
  for (NcclCommunicator* c : comms) {
    if (c->comm_ != nullptr) aborts.emplace_back(ncclCommAbort, std::exchange(c->comm_, nullptr));
    if (c->broken_.ok()) c->broken_ = error;
  }
  for (std::thread& t : aborts) t.join();
}

absl::Status NcclCommunicator::Fail(absl::Status error) {
  NcclCommunicator* self = this;
  AbortAll({&self, 1}, error);
  return error;
}

absl::Status NcclCommunicator::WaitEnqueued(const char* what) {
  if (absl::Status st = Usable(); !st.ok()) return st;
  const Clock::time_point deadline = Clock::now() + timeout_;
  absl::Status st = PollUntil([&] { return NcclSettled(comm_, what); }, deadline, what, timeout_);
  return st.ok() ? st : Fail(std::move(st));
}

absl::Status NcclCommunicator::AwaitStream(absl::Span<NcclCommunicator* const> comms,
                                           cudaStream_t stream, const char* what) {
  std::chrono::milliseconds timeout{0};
  for (NcclCommunicator* c : comms) {
    if (absl::Status st = c->Usable(); !st.ok()) return st;
    timeout = std::max(timeout, c->timeout_);
  }
  absl::Status st = PollUntil(
      [&]() -> absl::StatusOr<bool> {
        for (NcclCommunicator* c : comms) {
          absl::StatusOr<bool> settled = NcclSettled(c->comm_, what);
          if (!settled.ok() || !*settled) return settled;
        }
        const cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaErrorNotReady) return false;
        if (q != cudaSuccess) return CudaError(what, q);
        return true;
      },
      Clock::now() + timeout, what, timeout);
  if (st.ok()) return st;
  // A copy: releasing the holders may destroy the recording that owns `comms`.
  const std::vector<NcclCommunicator*> failed(comms.begin(), comms.end());
  AbortAll(failed, st);
  return st;
}

absl::Status NcclCommunicator::Finish(const char* what, ncclResult_t launched) {
  if (launched != ncclSuccess && launched != ncclInProgress) {
    return Fail(NcclError(what, launched));
  }
  if (enqueue_on_ != nullptr) return WaitEnqueued(what);
  NcclCommunicator* self = this;
  return AwaitStream({&self, 1}, stream_, what);
}

absl::Status NcclCommunicator::AllReduceSum(float* data, int64_t count) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  return Finish("ncclAllReduce(float)", ncclAllReduce(data, data, static_cast<size_t>(count),
                                                      ncclFloat32, ncclSum, comm_, Target()));
}

absl::Status NcclCommunicator::AllReduceSum(double* data, int64_t count) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  return Finish("ncclAllReduce(double)", ncclAllReduce(data, data, static_cast<size_t>(count),
                                                       ncclFloat64, ncclSum, comm_, Target()));
}

absl::Status NcclCommunicator::AllGather(const float* in, int64_t count, float* out) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  return Finish("ncclAllGather", ncclAllGather(in, out, static_cast<size_t>(count), ncclFloat32,
                                               comm_, Target()));
}

absl::Status NcclCommunicator::Broadcast(float* data, int64_t count, int root) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " of ", size_));
  }
  return Finish("ncclBroadcast", ncclBroadcast(data, data, static_cast<size_t>(count),
                                               ncclFloat32, root, comm_, Target()));
}

absl::Status NcclCommunicator::Send(const float* data, int64_t count, int peer) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  if (peer < 0 || peer >= size_ || peer == rank_) {
    return absl::InvalidArgumentError(absl::StrCat("send to peer ", peer, " from ", rank_));
  }
  return Finish("ncclSend",
                ncclSend(data, static_cast<size_t>(count), ncclFloat32, peer, comm_, Target()));
}

absl::Status NcclCommunicator::Recv(float* data, int64_t count, int peer) {
  if (absl::Status st = Usable(); !st.ok() || count == 0) return st;
  if (peer < 0 || peer >= size_ || peer == rank_) {
    return absl::InvalidArgumentError(absl::StrCat("recv from peer ", peer, " at ", rank_));
  }
  return Finish("ncclRecv",
                ncclRecv(data, static_cast<size_t>(count), ncclFloat32, peer, comm_, Target()));
}

absl::Status NcclCommunicator::Barrier() {
  if (absl::Status st = Usable(); !st.ok()) return st;
  return Finish("barrier (ncclAllReduce of one float)",
                ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, Target()));
}

}  // namespace mla
