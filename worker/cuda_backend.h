// The CUDA backend of Backend (worker/backend.h): one device, one CUDA stream it creates
// (non-blocking), the ops of kernels::cuda (kernels/cuda/ops.h) enqueued on that stream.
//
// Memory: weights and the cache are cudaMalloc'd (Allocate; freed by cudaFree with their last
// owner). Scratch is a per-step bump arena on the device (worker/cuda_backend_arena.h, reset by
// BeginStep, grown on demand); the ops' own temporaries (the bf16 copy of Linear's input, the
// absorb / MoE / sampling workspaces) share one grow-only device buffer, reused by every op in
// stream order. FreeMemoryBytes is cudaMemGetInfo's free memory: the arena and that buffer
// grow during the first large steps, so a caller sizing the cache from it must leave headroom.
//
// Numerics (the GPU column of backend.h): Partial is float32; Linear rounds its float input to
// bf16 (cuBLASLt, bf16 x bf16 -> float32, kernels/cuda/linear/linear.h), as do the MLA absorb
// projections and the decode attention's operands; so results agree with the CPU backend within
// bf16-operand tolerance, not bit for bit.
//
// Step graphs: CanCaptureSteps; a recorded step is a CUDA graph of the stream's ops, kept per
// GraphShape and replayed while the memory it wrote stays put (worker/cuda_backend_graphs.h).
// MoE experts of decode-sized batches run as grouped kernels that read the expert sizes on the
// device (GroupedMoeExperts), so a step records with no host sync. A tensor- or
// pipeline-parallel step records its NCCL collectives too (on this stream, NCCL's recording
// mode); its replays wait for the stream within the communicators' timeouts.
//
// Synchronisation: ops return after enqueueing; CopyToHost, Sample (which returns tokens on the
// host), CopyToBackend, PlaceBytes and the collectives (backend.h) wait for the stream (a
// collective being recorded does not: it joins the recording). A
// kernel's fault surfaces at the next of those (INTERNAL, naming the call that saw it).
//
// Threads: one thread at a time (backend.h). BeginStep, Sample and the memory calls make the
// device current on the calling thread; the ops of a step assume it still is (call them on the
// thread that called BeginStep).
#ifndef MLASERVE_WORKER_CUDA_BACKEND_H_
#define MLASERVE_WORKER_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/backend.h"

namespace mla {

// A backend on CUDA device `device`. INVALID_ARGUMENT for a device index outside
// [0, cudaGetDeviceCount()), FAILED_PRECONDITION when CUDA finds no usable device.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device);

}  // namespace mla

#endif  // MLASERVE_WORKER_CUDA_BACKEND_H_
