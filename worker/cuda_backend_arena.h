// CudaScratchArena: the CUDA backend's step scratch (Backend::Scratch), a bump allocator over
// device memory that the next step reuses.
//
// Allocate hands out 256-byte aligned pieces of one device block, in order; Reset (at the start
// of each step) makes the whole block free again. Reuse across steps is safe without a sync
// because every user of the memory runs on the backend's one stream, in order. When a step needs
// more than the block holds, a bigger block (at least twice as big, and at least the step's whole
// use so far plus the request) replaces it: pointers already handed out this step stay valid,
// because the old block is freed only at the next Reset, after a sync of the stream (kernels of
// this step may still read it). So the block settles at the largest step's need.
//
// Thread-compatible (the backend's one thread). REQUIRES: the device the arena was made for is
// current on the calling thread (cudaSetDevice) for Allocate and Reset.
#ifndef MLASERVE_WORKER_CUDA_BACKEND_ARENA_H_
#define MLASERVE_WORKER_CUDA_BACKEND_ARENA_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/backend.h"

namespace mla {

class CudaScratchArena {
 public:
  static constexpr int64_t kAlignment = 256;

  // `stream`: the stream every user of the memory runs on (synchronised before a retired block
  // is freed). No memory until the first Allocate or Reserve.
  explicit CudaScratchArena(cudaStream_t stream) : stream_(stream) {}
  ~CudaScratchArena();  // frees every block (cudaFree waits for the device)
  CudaScratchArena(const CudaScratchArena&) = delete;
  CudaScratchArena& operator=(const CudaScratchArena&) = delete;

  // Makes the block at least `bytes` big now (e.g. at load, before the cache takes the rest).
  absl::Status Reserve(int64_t bytes);
  // `bytes` (>= 0) of device memory, 256-byte aligned, valid until the next Reset (never null).
  // RESOURCE_EXHAUSTED when the device has no room to grow.
  absl::StatusOr<void*> Allocate(int64_t bytes);
  // The start of a step: everything handed out before may be reused. Frees retired blocks.
  absl::Status Reset();

  int64_t capacity() const { return capacity_; }  // bytes of the current block

  // Where the next Allocate starts (Backend's ScratchMark): the block (its generation changes
  // each time a bigger block replaces it), the bytes of it handed out since the last Reset, and
  // the step's live bytes. A recorded step (a CUDA graph) keeps the mark of its end: replayed in
  // a later step of the same block, it writes what lies below that mark again.
  using Mark = ScratchMark;
  Mark mark() const { return Mark{.block = generation_, .used = used_, .live = step_bytes_}; }
  // Makes the next Allocate start at `m` (a replayed recording's end), so that nothing handed
  // out after it overlaps what the replay writes. FAILED_PRECONDITION when the block is no
  // longer m's or more than m.used is already handed out.
  absl::Status AdvanceTo(const Mark& m);
  // Frees what was handed out after `m` (a mark of this step, possibly of a block replaced
  // since: then the whole current block is free). The caller's ops on the stream are ordered
  // before any later user of the memory.
  void Release(const Mark& m);

 private:
  absl::Status Grow(int64_t min_bytes);

  cudaStream_t stream_;
  char* block_ = nullptr;
  int64_t capacity_ = 0;
  int64_t generation_ = 0;    // blocks made so far
  int64_t used_ = 0;          // bytes of block_ handed out since the last Reset
  int64_t step_bytes_ = 0;    // bytes live since the last Reset, over all blocks
  std::vector<void*> retired_;  // blocks replaced this step, freed at the next Reset
};

}  // namespace mla

#endif  // MLASERVE_WORKER_CUDA_BACKEND_ARENA_H_
