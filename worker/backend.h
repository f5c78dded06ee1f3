// Backend: where one worker's tensors live and how its ops run. The model code (model.cc,
// layers.cc) is written once against this interface and never branches on CPU vs GPU
// (ARCHITECTURE.md): CpuBackend (cpu_backend.h) runs kernels::cpu on host memory, CudaBackend
// (cuda_backend.h) runs kernels::cuda on one device and one stream.
//
// Contracts:
// - Every pointer an op takes is in the backend's memory (host for the CPU, the device for
//   CUDA): weights placed with Place, the cache pool's blocks, the step's index arrays from
//   BeginStep, and scratch from Scratch. The ops are kernels/ops.h's, same shapes and aliasing.
// - Ops may run asynchronously, in call order; CopyToHost and the collectives' buffers see every
//   earlier op's result. Errors of an op may surface at a later call (as CUDA reports them).
// - Collectives go through the Backend (AllReduce, AllGather, Send, Recv, AllReducePartial): each
//   first waits for the ops before it, so the communicator (Gloo on host memory, NCCL on its own
//   stream) reads and writes finished buffers; in a step being recorded they are recorded too
//   (NCCL), and a replay that holds collectives returns only once they are done, within the
//   communicators' timeouts. A null communicator is a group of one.
// - Partial is a layer's per-rank output before the tensor-parallel sum: float64 on the CPU, so
//   that the sum over any tp split rounds once and tp x pp runs give identical tokens, float32
//   on the GPU (NCCL sums in float32; tokens then agree within float rounding).
// - Scratch memory lives until the next BeginStep. One thread at a time.
// - Step graphs (CanCaptureSteps): a backend may record a step's ops between BeginCapture and
//   EndCapture instead of running them, and Replay the recording in a later step of the same
//   GraphShape after that step's BeginStep; the recording reads the step's arrays and writes
//   the same scratch addresses as when recorded. worker/model.cc decides what is recorded.
#ifndef MLASERVE_WORKER_BACKEND_H_
#define MLASERVE_WORKER_BACKEND_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/bf16.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "worker/communicator.h"
#include "worker/flat_batch.h"

namespace mla {

// A tensor's storage in a backend's memory; copies share it.
template <typename T>
class Array {
 public:
  Array() = default;
  Array(std::shared_ptr<void> owner, T* data, int64_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}
  T* data() const { return data_; }
  int64_t size() const { return size_; }
  // The storage's owner: a backend may keep data derived from the tensor while it lives.
  const std::shared_ptr<void>& owner() const { return owner_; }
  bool empty() const { return size_ == 0; }

 private:
  std::shared_ptr<void> owner_;
  T* data_ = nullptr;
  int64_t size_ = 0;
};

// A tensor-parallel partial sum of `count` values (float64 on the CPU, float32 on the GPU).
struct Partial {
  void* data = nullptr;
  int64_t count = 0;
};

// The step's index arrays in backend memory (FlatBatch's, same meaning).
struct StepIndex {
  const int32_t* tokens = nullptr;       // [num_tokens]
  const int32_t* positions = nullptr;    // [num_tokens]
  const int64_t* slots = nullptr;        // [num_tokens]
  const int32_t* sample_rows = nullptr;  // [sample rows]
  kernels::RaggedBatch prefill;          // FlatBatch::Prefill() with backend pointers
  kernels::RaggedBatch decode;           // FlatBatch::Decode() with backend pointers
};

// A point in the step's scratch (Backend::MarkScratch); opaque to callers.
struct ScratchMark {
  int64_t block = 0;  // which scratch block (a backend that replaces blocks counts them)
  int64_t used = 0;   // bytes (CPU: pieces) of that block handed out
  int64_t live = 0;   // bytes live in the step, over all blocks
};

// What BeginStep needs beyond the batch.
struct StepOptions {
  kernels::MlaDims attention;  // this rank's attention dims (the attention kernels' plans)
  // The batch is padded to a GraphShape (PadToGraphShape) and the step may be recorded: the
  // decode attention is launched for the shape's bounds, whatever this step's plan.
  bool graph_shape = false;
};

// One routed expert's SwiGLU weights, [width, hidden] gate and up and [hidden, width] down.
struct ExpertWeights {
  const bf16* gate = nullptr;
  const bf16* up = nullptr;
  const bf16* down = nullptr;
};

// The routed experts of this rank and their dispatched rows (GroupedMoeExperts).
struct MoeExpertsArgs {
  const float* x = nullptr;               // [rows, hidden], the layer's normalised input
  int64_t rows = 0;
  int64_t top_k = 0;
  const int32_t* expert_offsets = nullptr;  // MoeDispatch's [num_experts + 1], backend memory
  const int32_t* sorted_pairs = nullptr;    // MoeDispatch's [rows * top_k]
  const float* weights = nullptr;           // MoeGate's [rows, top_k]
  int64_t expert_begin = 0;                 // global id of experts[0]
  std::vector<ExpertWeights> experts;       // this rank's, consecutive ids
  std::weak_ptr<void> experts_owner;        // experts[0].gate's storage (loaded and freed
                                            // with the others): caches of the pointers live
                                            // while it does
  int64_t hidden = 0, width = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Describe() const = 0;  // e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
  virtual int device() const = 0;            // the GPU ordinal; -1 for the CPU

  // --- Memory.
  // `bytes` of backend memory, uninitialised, freed when the last owner goes.
  virtual absl::StatusOr<std::shared_ptr<void>> Allocate(int64_t bytes) = 0;
  virtual absl::Status CopyToBackend(const void* host, int64_t bytes, void* dst) = 0;
  // Waits for the ops before it, then copies.
  virtual absl::Status CopyToHost(const void* src, int64_t bytes, void* host) = 0;
  virtual absl::Status FillBytes(void* dst, uint8_t value, int64_t bytes) = 0;
  // Backend memory that holds `host`'s values (the CPU adopts the vector, no copy).
  template <typename T>
  absl::StatusOr<Array<T>> Place(std::vector<T> host);
  // Scratch of `count` T, valid until the next BeginStep or a ReleaseScratch of a mark taken
  // before it; 256-byte aligned.
  template <typename T>
  absl::StatusOr<T*> Scratch(int64_t count) {
    auto p = ScratchBytes(count * static_cast<int64_t>(sizeof(T)));
    if (!p.ok()) return p.status();
    return static_cast<T*>(*p);
  }
  absl::StatusOr<Partial> ScratchPartial(int64_t count);
  // Scratch handed out after MarkScratch is free again at ReleaseScratch(mark), for what comes
  // after (a layer's temporaries, reused by the next layer; ops run in order, so the ops before
  // the release are done with it first). Marks are released innermost first.
  virtual ScratchMark MarkScratch() = 0;
  virtual absl::Status ReleaseScratch(const ScratchMark& mark) = 0;
  // Bytes free for the cache after what is allocated now; Unimplemented where unknown (CPU).
  virtual absl::StatusOr<int64_t> FreeMemoryBytes() = 0;

  // --- The step. Uploads the step's index arrays and plans the attention kernels for it.
  virtual absl::StatusOr<StepIndex> BeginStep(const FlatBatch& batch,
                                              const StepOptions& options) = 0;

  // --- Step graphs (see the contract above); the CPU has none.
  virtual bool CanCaptureSteps() const { return false; }
  // The ops after this are recorded, not run, until EndCapture.
  virtual absl::Status BeginCapture();
  // Ends the recording and keeps it for `shape` if `keep`. False, with nothing kept and nothing
  // run, when !keep or the recording failed (an op that cannot be recorded, memory that moved):
  // the caller then runs the ops again. An error only when the backend is broken.
  virtual absl::StatusOr<bool> EndCapture(const GraphShape& shape, bool keep);
  // Runs the recording kept for `shape` on this step's arrays (the step's BeginStep was made
  // with graph_shape); false, running nothing, when there is none (never kept, or dropped
  // because memory it uses has moved since).
  virtual absl::StatusOr<bool> Replay(const GraphShape& shape);

  // --- Ops (kernels/ops.h contracts).
  virtual absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in,
                              int64_t out, float* y) = 0;
  virtual absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in,
                              int64_t out, Partial y) = 0;
  // Linear in float32 throughout (x not rounded, w widened exactly): the MoE router, which
  // DeepSeek computes in float32 so that near-tie expert choices do not depend on rounding.
  virtual absl::Status LinearF32(const float* x, const Array<bf16>& w, int64_t rows,
                                 int64_t in, int64_t out, float* y) = 0;
  virtual absl::Status RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim,
                               float eps, float* y) = 0;
  virtual absl::Status AddRmsNorm(float* residual, const float* delta, const float* weight,
                                  int64_t rows, int64_t dim, float eps, float* y) = 0;
  virtual absl::Status ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                                 int64_t head_stride, const int32_t* positions,
                                 const float* inv_freq, int64_t rope_dim,
                                 float cos_sin_scale) = 0;
  virtual absl::Status SiluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  virtual absl::Status Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
                             int64_t vocab_begin, int64_t vocab_end, float* out) = 0;
  // [c ; k^R] = [RmsNorm(kv latent) ; rope(kv rope)] rounded into the cache (one fused op).
  virtual absl::Status WriteLatentCache(const kernels::LatentWrite& in,
                                        const kernels::LatentCache& cache) = 0;
  // The step's plan (BeginStep) covers params.batch = StepIndex::prefill / decode.
  virtual absl::Status MlaPrefillAttention(const kernels::MlaPrefillParams& params) = 0;
  virtual absl::Status MlaAbsorbQuery(const float* q, const bf16* wkv_b, int64_t tokens,
                                      const kernels::MlaDims& dims, float* q_abs) = 0;
  virtual absl::Status MlaDecodeAttention(const kernels::MlaDecodeParams& params) = 0;
  virtual absl::Status MlaUnabsorbOutput(const float* latent_out, const bf16* wkv_b,
                                         int64_t tokens, const kernels::MlaDims& dims,
                                         float* out) = 0;
  virtual absl::Status MoeGate(const float* logits, const float* bias, int64_t tokens,
                               const kernels::MoeRouting& routing, int32_t* expert_ids,
                               float* weights) = 0;
  virtual absl::Status MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k,
                                   int64_t num_experts, int32_t* expert_offsets,
                                   int32_t* sorted_pairs) = 0;
  // out[pair / top_k] += weights[pair] * expert_out[j] (kernels/ops.h MoeCombine); `tokens`
  // rows in out.
  virtual absl::Status MoeCombine(const float* expert_out, const int32_t* sorted_pairs,
                                  const float* weights, int64_t count, int64_t tokens,
                                  int64_t top_k, int64_t dim, Partial out) = 0;
  // out += sum over this rank's routed experts e and their dispatched pairs j of
  // weights[pair_j] * SwiGLU_e(x[pair_j / top_k]), what MoeForward's per-expert loop computes
  // (layers.cc), but without reading the expert sizes on the host (so a step can be recorded).
  // False, doing nothing, where the backend has no such path for these sizes: the caller loops.
  virtual absl::StatusOr<bool> GroupedMoeExperts(const MoeExpertsArgs& args, Partial out);
  // out[j] = x[index[j] / divisor] (rows of dim floats), j < count.
  virtual absl::Status GatherRows(const float* x, const int32_t* index, int64_t count,
                                  int64_t divisor, int64_t dim, float* out) = 0;
  // dst[r * dst_stride + c] = src[r * src_stride + c], r < rows, c < cols.
  virtual absl::Status Copy2D(const float* src, int64_t src_stride, int64_t rows, int64_t cols,
                              float* dst, int64_t dst_stride) = 0;
  virtual absl::Status Add(const float* x, int64_t n, float* y) = 0;  // y += x
  virtual absl::Status ZeroPartial(Partial p) = 0;
  virtual absl::Status PartialToFloat(Partial p, float* out) = 0;  // one rounding

  // --- Collectives (Communicator's, on backend memory; see above).
  absl::Status AllReduce(Communicator* comm, float* data, int64_t count);
  absl::Status AllReducePartial(Communicator* comm, Partial p);  // in the partials' precision
  absl::Status AllGather(Communicator* comm, const float* in, int64_t count, float* out);
  absl::Status Send(Communicator* comm, const float* data, int64_t count, int peer);
  absl::Status Recv(Communicator* comm, float* data, int64_t count, int peer);
  // Row r of logits [rows, vocab] draws with params[r] at steps[r]; the tokens, on the host.
  virtual absl::StatusOr<std::vector<int32_t>> Sample(
      const float* logits, int64_t rows, int64_t vocab,
      const std::vector<kernels::SamplingParams>& params,
      const std::vector<uint64_t>& steps) = 0;

 protected:
  // Runs `call` (one of comm's collectives on this backend's memory) after the ops enqueued so
  // far: the CPU calls it at once; the GPU waits for its stream first, or while recording a step
  // enqueues the collective into the recording (NCCL's recording mode).
  virtual absl::Status RunCollective(Communicator& comm,
                                     absl::FunctionRef<absl::Status()> call) = 0;
  virtual absl::StatusOr<void*> ScratchBytes(int64_t bytes) = 0;
  virtual int64_t PartialElementBytes() const = 0;
  // Place for a type-erased vector; the CPU adopts `owner` (which holds the vector).
  virtual absl::StatusOr<std::shared_ptr<void>> PlaceBytes(std::shared_ptr<void> owner,
                                                           const void* host, int64_t bytes) = 0;
};

template <typename T>
absl::StatusOr<Array<T>> Backend::Place(std::vector<T> host) {
  const int64_t size = static_cast<int64_t>(host.size());
  auto holder = std::make_shared<std::vector<T>>(std::move(host));
  const void* bytes = holder->data();
  absl::StatusOr<std::shared_ptr<void>> placed =
      PlaceBytes(holder, bytes, size * static_cast<int64_t>(sizeof(T)));
  if (!placed.ok()) return placed.status();
  T* data = static_cast<T*>(placed->get());
  return Array<T>(*std::move(placed), data, size);
}

inline absl::StatusOr<Partial> Backend::ScratchPartial(int64_t count) {
  absl::StatusOr<void*> p = ScratchBytes(count * PartialElementBytes());
  if (!p.ok()) return p.status();
  return Partial{*p, count};
}

}  // namespace mla

#endif  // MLASERVE_WORKER_BACKEND_H_
