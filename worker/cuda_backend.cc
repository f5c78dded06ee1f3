// CudaBackend: each op is its kernels::cuda twin on the backend's stream; see cuda_backend.h.
#include "worker/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/moe/moe_grouped.h"
#include "kernels/cuda/ops.h"
#include "worker/cuda_backend_arena.h"
#include "worker/cuda_backend_step.h"
#include "worker/cuda_backend_graphs.h"
#include "worker/nccl_communicator.h"
#include "worker/status_macros.h"

namespace mla {
namespace {

namespace cu = kernels::cuda;
using cu::CudaStatus;

constexpr int64_t kAlign = CudaScratchArena::kAlignment;
constexpr int64_t kInitialScratchBytes = int64_t{64} << 20;

int64_t AlignUp(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kAlign == 0; }
float* AsFloat(Partial p) { return static_cast<float*>(p.data); }

absl::Status CheckPartial(const char* op, Partial p, int64_t count) {
  if (p.count < count) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": the partial holds ", p.count,
                                                   " values, ", count, " needed"));
  }
  return absl::OkStatus();
}

class CudaBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<Backend>> Create(int device);
  ~CudaBackend() override;

  std::string Describe() const override { return description_; }
  int device() const override { return device_; }

  absl::StatusOr<std::shared_ptr<void>> Allocate(int64_t bytes) override;
  absl::Status CopyToBackend(const void* host, int64_t bytes, void* dst) override;
  absl::Status CopyToHost(const void* src, int64_t bytes, void* host) override;
  absl::Status FillBytes(void* dst, uint8_t value, int64_t bytes) override {
    if (bytes == 0) return absl::OkStatus();
    return CudaStatus(cudaMemsetAsync(dst, value, static_cast<size_t>(bytes), stream_),
                      "FillBytes: cudaMemsetAsync");
  }
  absl::StatusOr<int64_t> FreeMemoryBytes() override;
  ScratchMark MarkScratch() override { return arena_->mark(); }
  absl::Status ReleaseScratch(const ScratchMark& mark) override {
    arena_->Release(mark);
    return absl::OkStatus();
  }

  absl::StatusOr<StepIndex> BeginStep(const FlatBatch& batch,
                                      const StepOptions& options) override;
  bool CanCaptureSteps() const override { return true; }
  absl::Status BeginCapture() override;
  absl::StatusOr<bool> EndCapture(const GraphShape& shape, bool keep) override;
  absl::StatusOr<bool> Replay(const GraphShape& shape) override;

  absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out,
                      float* y) override {
    return LinearInto(x, w, rows, in, out, y);
  }
  absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out,
                      Partial y) override {
    MLA_RETURN_IF_ERROR(CheckPartial("Linear", y, rows * out));
    return LinearInto(x, w, rows, in, out, AsFloat(y));
  }
  absl::Status LinearF32(const float* x, const Array<bf16>& w, int64_t rows, int64_t in,
                         int64_t out, float* y) override;
  absl::Status RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) override {
    return cu::RmsNorm(x, weight, rows, dim, eps, y, stream_);
  }
  absl::Status AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows,
                          int64_t dim, float eps, float* y) override {
    return cu::AddRmsNorm(residual, delta, weight, rows, dim, eps, y, stream_);
  }
  absl::Status ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                         int64_t head_stride, const int32_t* positions, const float* inv_freq,
                         int64_t rope_dim, float cos_sin_scale) override {
    return cu::ApplyRope(x, rows, heads, row_stride, head_stride, positions, inv_freq, rope_dim,
                         cos_sin_scale, stream_);
  }
  absl::Status SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    return cu::SiluMul(gate, up, n, out, stream_);
  }
  absl::Status Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
                     int64_t vocab_begin, int64_t vocab_end, float* out) override {
    return cu::Embed(table, ids, tokens, dim, vocab_begin, vocab_end, out, stream_);
  }
  absl::Status WriteLatentCache(const kernels::LatentWrite& in,
                                const kernels::LatentCache& cache) override {
    return cu::WriteLatentCache(in, cache, stream_);
  }
  absl::Status MlaPrefillAttention(const kernels::MlaPrefillParams& params) override {
    MLA_ASSIGN_OR_RETURN(const CudaStepPlan::PrefillRun run,
                         step_->Prefill(params.dims, params.batch));
    return cu::MlaPrefillAttention(*linear_, params, *run.plan, run.workspace, stream_);
  }
  absl::Status MlaAbsorbQuery(const float* q, const bf16* wkv_b, int64_t tokens,
                              const kernels::MlaDims& dims, float* q_abs) override {
    MLA_ASSIGN_OR_RETURN(void* workspace, OpWorkspace(static_cast<int64_t>(
                                              cu::MlaAbsorbQueryWorkspaceBytes(tokens, dims))));
    return cu::MlaAbsorbQuery(*absorb_, q, wkv_b, tokens, dims, workspace, q_abs, stream_);
  }
  absl::Status MlaDecodeAttention(const kernels::MlaDecodeParams& params) override {
    MLA_ASSIGN_OR_RETURN(const CudaStepPlan::DecodeRun run,
                         step_->Decode(params.dims, params.batch));
    return cu::MlaDecodeAttention(params, *run.plan, run.launch, stream_);
  }
  absl::Status MlaUnabsorbOutput(const float* latent_out, const bf16* wkv_b, int64_t tokens,
                                 const kernels::MlaDims& dims, float* out) override {
    MLA_ASSIGN_OR_RETURN(void* workspace, OpWorkspace(static_cast<int64_t>(
                                              cu::MlaUnabsorbOutputWorkspaceBytes(tokens, dims))));
    return cu::MlaUnabsorbOutput(*absorb_, latent_out, wkv_b, tokens, dims, workspace, out,
                                 stream_);
  }
  absl::Status MoeGate(const float* logits, const float* bias, int64_t tokens,
                       const kernels::MoeRouting& routing, int32_t* expert_ids,
                       float* weights) override {
    return cu::MoeGate(logits, bias, tokens, routing, expert_ids, weights, stream_);
  }
  absl::Status MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k,
                           int64_t num_experts, int32_t* expert_offsets,
                           int32_t* sorted_pairs) override {
    return cu::MoeDispatch(expert_ids, tokens, top_k, num_experts, expert_offsets, sorted_pairs,
                           stream_);
  }
  absl::Status MoeCombine(const float* expert_out, const int32_t* sorted_pairs,
                          const float* weights, int64_t count, int64_t tokens, int64_t top_k,
                          int64_t dim, Partial out) override {
    MLA_RETURN_IF_ERROR(CheckPartial("MoeCombine", out, tokens * dim));
    MLA_ASSIGN_OR_RETURN(void* workspace, OpWorkspace(static_cast<int64_t>(
                                              cu::MoeCombineWorkspaceBytes(tokens, top_k))));
    return cu::MoeCombine(expert_out, sorted_pairs, weights, count, tokens, top_k, dim, workspace,
                          AsFloat(out), stream_);
  }
  absl::StatusOr<bool> GroupedMoeExperts(const MoeExpertsArgs& args, Partial out) override;
  absl::Status GatherRows(const float* x, const int32_t* index, int64_t count, int64_t divisor,
                          int64_t dim, float* out) override {
    return cu::GatherRows(x, index, count, divisor, dim, out, stream_);
  }
  absl::Status Copy2D(const float* src, int64_t src_stride, int64_t rows, int64_t cols,
                      float* dst, int64_t dst_stride) override;
  absl::Status Add(const float* x, int64_t n, float* y) override {
    return cu::Add(x, n, y, stream_);
  }
  absl::Status ZeroPartial(Partial p) override {
    return FillBytes(p.data, 0, p.count * static_cast<int64_t>(sizeof(float)));
  }
  absl::Status PartialToFloat(Partial p, float* out) override;
  absl::StatusOr<std::vector<int32_t>> Sample(const float* logits, int64_t rows, int64_t vocab,
                                              const std::vector<kernels::SamplingParams>& params,
                                              const std::vector<uint64_t>& steps) override;

 protected:
  absl::Status RunCollective(Communicator& comm,
                             absl::FunctionRef<absl::Status()> call) override;
  absl::StatusOr<void*> ScratchBytes(int64_t bytes) override { return arena_->Allocate(bytes); }
  int64_t PartialElementBytes() const override { return sizeof(float); }
  absl::StatusOr<std::shared_ptr<void>> PlaceBytes(std::shared_ptr<void> owner, const void* host,
                                                   int64_t bytes) override;

 private:
  explicit CudaBackend(int device) : device_(device) {}
  absl::Status UseDevice() const { return CudaStatus(cudaSetDevice(device_), "cudaSetDevice"); }
  // At least `bytes` of device memory for one op's temporaries (256-byte aligned; null when 0
  // and nothing was ever needed). Valid until the next call; ops reuse it in stream order.
  absl::StatusOr<char*> OpWorkspace(int64_t bytes);
  absl::Status LinearInto(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out,
                          float* y);
  // The device tables of the experts' weight pointers (GroupedMoeExperts), made on first use.
  absl::StatusOr<cu::MoeGroupedWeights> ExpertTable(const MoeExpertsArgs& args);

  int device_;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cu::LinearContext> linear_;
  std::unique_ptr<cu::MlaAbsorbContext> absorb_;
  std::unique_ptr<CudaScratchArena> arena_;
  std::unique_ptr<CudaStepPlan> step_;
  char* workspace_ = nullptr;
  int64_t workspace_bytes_ = 0;
  int64_t workspace_generation_ = 0;  // buffers made so far
  // Device data made from weights on first use, kept while the weights live (an address freed
  // by one model and reused by the next must not find the old one's; entries of freed weights
  // are dropped at the next miss): the experts' pointer tables (by the first expert's gate) and
  // LinearF32's float32 weights (by the weight).
  struct Derived {
    std::weak_ptr<void> source;
    std::shared_ptr<void> data;
  };
  template <typename Make>
  absl::StatusOr<void*> DerivedOf(std::map<const void*, Derived>& cache, const void* key,
                                  const std::weak_ptr<void>& source, Make make);
  std::map<const void*, Derived> expert_tables_;
  std::map<const void*, Derived> widened_;
  std::unique_ptr<CudaStepGraphs> graphs_;
  std::map<std::pair<int64_t, int64_t>, cu::SamplePlan> sample_plans_;  // by (rows, vocab)
};

absl::StatusOr<std::unique_ptr<Backend>> CudaBackend::Create(int device) {
  int count = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuda:", device, ": no usable CUDA device (",
        err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount reports 0", ")"));
  }
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda:", device, ": the device index must be in [0, ", count, ")"));
  }
  std::unique_ptr<CudaBackend> be(new CudaBackend(device));
  MLA_RETURN_IF_ERROR(be->UseDevice());
  cudaDeviceProp prop{};
  MLA_RETURN_IF_ERROR(
      CudaStatus(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties"));
  be->description_ = absl::StrCat("cuda:", device, " (", prop.name, ")");
  MLA_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&be->stream_, cudaStreamNonBlocking),
                                 "cudaStreamCreateWithFlags"));
  MLA_ASSIGN_OR_RETURN(be->linear_, cu::LinearContext::Create());
  MLA_ASSIGN_OR_RETURN(be->absorb_, cu::MlaAbsorbContext::Create());
  be->arena_ = std::make_unique<CudaScratchArena>(be->stream_);
  MLA_RETURN_IF_ERROR(be->arena_->Reserve(kInitialScratchBytes));
  be->graphs_ = std::make_unique<CudaStepGraphs>(be->stream_, be->arena_.get());
  MLA_ASSIGN_OR_RETURN(be->step_, CudaStepPlan::Create(prop.multiProcessorCount));
  return std::unique_ptr<Backend>(std::move(be));
}

CudaBackend::~CudaBackend() {
  // Errors here have no one to report to; the frees below wait for the device anyway.
  cudaSetDevice(device_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  graphs_.reset();
  step_.reset();
  arena_.reset();
  absorb_.reset();
  linear_.reset();
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::StatusOr<std::shared_ptr<void>> CudaBackend::Allocate(int64_t bytes) {
  MLA_RETURN_IF_ERROR(UseDevice());
  if (bytes == 0) return std::shared_ptr<void>();
  void* p = nullptr;
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, static_cast<size_t>(bytes)),
                                 absl::StrCat("cudaMalloc of ", bytes, " bytes").c_str()));
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

absl::Status CudaBackend::CopyToBackend(const void* host, int64_t bytes, void* dst) {
  if (bytes == 0) return absl::OkStatus();
  MLA_RETURN_IF_ERROR(UseDevice());
  // Synchronous: `host` may be freed (or reused) as soon as this returns.
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(dst, host, static_cast<size_t>(bytes),
                                                 cudaMemcpyHostToDevice, stream_),
                                 "CopyToBackend: cudaMemcpyAsync"));
  return CudaStatus(cudaStreamSynchronize(stream_), "CopyToBackend: cudaStreamSynchronize");
}

absl::Status CudaBackend::CopyToHost(const void* src, int64_t bytes, void* host) {
  if (bytes == 0) return absl::OkStatus();
  MLA_RETURN_IF_ERROR(UseDevice());
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(host, src, static_cast<size_t>(bytes),
                                                 cudaMemcpyDeviceToHost, stream_),
                                 "CopyToHost: cudaMemcpyAsync"));
  return CudaStatus(cudaStreamSynchronize(stream_), "CopyToHost: cudaStreamSynchronize");
}

absl::StatusOr<int64_t> CudaBackend::FreeMemoryBytes() {
  MLA_RETURN_IF_ERROR(UseDevice());
  size_t free_bytes = 0, total_bytes = 0;
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  return static_cast<int64_t>(free_bytes);
}

absl::StatusOr<std::shared_ptr<void>> CudaBackend::PlaceBytes(std::shared_ptr<void> /*owner*/,
                                                              const void* host, int64_t bytes) {
  MLA_ASSIGN_OR_RETURN(std::shared_ptr<void> placed, Allocate(bytes));
  MLA_RETURN_IF_ERROR(CopyToBackend(host, bytes, placed.get()));
  return placed;  // the host copy (owner) is released by the caller
}

absl::StatusOr<StepIndex> CudaBackend::BeginStep(const FlatBatch& batch,
                                                  const StepOptions& options) {
  if (graphs_->capturing()) {
    return absl::FailedPreconditionError("BeginStep while recording a step");
  }
  MLA_RETURN_IF_ERROR(UseDevice());
  MLA_RETURN_IF_ERROR(arena_->Reset());
  return step_->Begin(batch, options, *arena_, stream_);
}

absl::Status CudaBackend::RunCollective(Communicator& comm,
                                        absl::FunctionRef<absl::Status()> call) {
  if (!graphs_->capturing()) {
    MLA_RETURN_IF_ERROR(
        CudaStatus(cudaStreamSynchronize(stream_), "before a collective: cudaStreamSynchronize"));
    return call();
  }
  auto* nccl = dynamic_cast<NcclCommunicator*>(&comm);
  if (nccl == nullptr) {
    return absl::FailedPreconditionError("a recorded collective needs an NCCL communicator");
  }
  graphs_->Uses(nccl);
  nccl->EnqueueOn(stream_);
  absl::Status status = call();
  nccl->EnqueueOn(nullptr);
  return status;
}

absl::Status CudaBackend::BeginCapture() {
  MLA_RETURN_IF_ERROR(UseDevice());
  return graphs_->Begin(workspace_generation_);
}

absl::StatusOr<bool> CudaBackend::EndCapture(const GraphShape& shape, bool keep) {
  return graphs_->End(shape, keep, workspace_generation_, step_->index().tokens);
}

absl::StatusOr<bool> CudaBackend::Replay(const GraphShape& shape) {
  return graphs_->Replay(shape, workspace_generation_, step_->index().tokens);
}

template <typename Make>
absl::StatusOr<void*> CudaBackend::DerivedOf(std::map<const void*, Derived>& cache,
                                             const void* key, const std::weak_ptr<void>& source,
                                             Make make) {
  auto it = cache.find(key);
  if (it != cache.end() && !it->second.source.expired()) return it->second.data.get();
  // A miss: first use, or a new model. Whatever a freed model's weights left is freed with it.
  std::erase_if(cache, [](const auto& entry) { return entry.second.source.expired(); });
  absl::StatusOr<std::shared_ptr<void>> data = make();
  if (!data.ok()) return data.status();
  cache[key] = Derived{.source = source, .data = *data};
  return data->get();
}

absl::StatusOr<cu::MoeGroupedWeights> CudaBackend::ExpertTable(const MoeExpertsArgs& a) {
  const int64_t n = static_cast<int64_t>(a.experts.size());
  auto make = [&]() -> absl::StatusOr<std::shared_ptr<void>> {
    // [gate pointers | up pointers | down pointers], n each.
    std::vector<const bf16*> table;
    for (const ExpertWeights& e : a.experts) table.push_back(e.gate);
    for (const ExpertWeights& e : a.experts) table.push_back(e.up);
    for (const ExpertWeights& e : a.experts) table.push_back(e.down);
    const int64_t bytes = static_cast<int64_t>(table.size() * sizeof(const bf16*));
    MLA_ASSIGN_OR_RETURN(std::shared_ptr<void> device, Allocate(bytes));
    MLA_RETURN_IF_ERROR(CopyToBackend(table.data(), bytes, device.get()));
    return device;
  };
  MLA_ASSIGN_OR_RETURN(void* table,
                       DerivedOf(expert_tables_, a.experts.front().gate, a.experts_owner, make));
  const auto* pointers = static_cast<const bf16* const*>(table);
  return cu::MoeGroupedWeights{.gate = pointers,
                               .up = pointers + n,
                               .down = pointers + 2 * n,
                               .expert_begin = a.expert_begin,
                               .num_experts = n,
                               .hidden = a.hidden,
                               .width = a.width};
}

// Decode-sized batches: every expert in one launch per projection, the expert sizes read by the
// kernels from device memory. Larger batches use the per-expert cuBLASLt loop (layers.cc).
absl::StatusOr<bool> CudaBackend::GroupedMoeExperts(const MoeExpertsArgs& a, Partial out) {
  constexpr int64_t kMaxGroupedPairs = 1024;
  const int64_t pairs = a.rows * a.top_k;
  if (a.experts.empty() || pairs > kMaxGroupedPairs || a.hidden % cu::kMoeGroupedAlign != 0 ||
      a.width % cu::kMoeGroupedAlign != 0) {
    return false;
  }
  MLA_RETURN_IF_ERROR(CheckPartial("GroupedMoeExperts", out, a.rows * a.hidden));
  MLA_ASSIGN_OR_RETURN(const cu::MoeGroupedWeights w, ExpertTable(a));
  MLA_ASSIGN_OR_RETURN(float* act, Scratch<float>(pairs * a.width));
  MLA_ASSIGN_OR_RETURN(float* ys, Scratch<float>(pairs * a.hidden));
  MLA_RETURN_IF_ERROR(cu::MoeGroupedGateUp(a.x, a.expert_offsets, a.sorted_pairs, a.top_k, pairs,
                                           w, act, stream_));
  MLA_RETURN_IF_ERROR(cu::MoeGroupedDown(act, a.expert_offsets, pairs, w, ys, stream_));
  MLA_ASSIGN_OR_RETURN(void* workspace, OpWorkspace(static_cast<int64_t>(
                                            cu::MoeCombineWorkspaceBytes(a.rows, a.top_k))));
  const int32_t* first = a.expert_offsets + a.expert_begin;
  MLA_RETURN_IF_ERROR(cu::MoeCombineRange(ys, a.sorted_pairs, first, first + w.num_experts,
                                          a.weights, pairs, a.rows, a.top_k, a.hidden, workspace,
                                          AsFloat(out), stream_));
  return true;
}

absl::StatusOr<char*> CudaBackend::OpWorkspace(int64_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  // Earlier ops of the stream may still use the old buffer.
  MLA_RETURN_IF_ERROR(
      CudaStatus(cudaStreamSynchronize(stream_), "op workspace: cudaStreamSynchronize"));
  if (workspace_ != nullptr) cudaFree(workspace_);
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  const int64_t size = AlignUp(std::max(bytes, int64_t{1} << 20));
  void* fresh = nullptr;
  const std::string what = absl::StrCat("op workspace: cudaMalloc of ", size, " bytes");
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&fresh, static_cast<size_t>(size)), what.c_str()));
  workspace_ = static_cast<char*>(fresh);
  workspace_bytes_ = size;
  ++workspace_generation_;
  return workspace_;
}

// cuda::Linear takes bf16 x (CastToBf16 into the op workspace). Its cuBLASLt plan assumes
// 256-byte aligned operands (the preference's default), which cudaMalloc'd weights and arena
// scratch are; a weight or output at another offset goes through an aligned copy.
absl::Status CudaBackend::LinearInto(const float* x, const bf16* w, int64_t rows, int64_t in,
                                     int64_t out, float* y) {
  if (rows == 0 || out == 0) return absl::OkStatus();
  constexpr int64_t kBf16 = sizeof(bf16), kFloat = sizeof(float);
  const int64_t x_bytes = AlignUp(rows * in * kBf16);
  const int64_t w_bytes = Aligned(w) ? 0 : AlignUp(out * in * kBf16);
  const int64_t y_bytes = Aligned(y) ? 0 : AlignUp(rows * out * kFloat);
  MLA_ASSIGN_OR_RETURN(char* workspace, OpWorkspace(x_bytes + w_bytes + y_bytes));
  bf16* x_bf16 = reinterpret_cast<bf16*>(workspace);
  const bf16* w_aligned = w;
  if (w_bytes > 0) {
    bf16* copy = reinterpret_cast<bf16*>(workspace + x_bytes);
    MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(copy, w, out * in * sizeof(bf16),
                                                   cudaMemcpyDeviceToDevice, stream_),
                                   "Linear: cudaMemcpyAsync of a misaligned weight"));
    w_aligned = copy;
  }
  float* y_aligned = y_bytes > 0 ? reinterpret_cast<float*>(workspace + x_bytes + w_bytes) : y;
  MLA_RETURN_IF_ERROR(cu::CastToBf16(x, rows * in, x_bf16, stream_));
  MLA_RETURN_IF_ERROR(cu::Linear(*linear_, x_bf16, w_aligned, rows, in, out, y_aligned, stream_));
  if (y_bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(y, y_aligned, rows * out * sizeof(float),
                                    cudaMemcpyDeviceToDevice, stream_),
                    "Linear: cudaMemcpyAsync to a misaligned output");
}

// The float32 copy of a weight is made on first use and kept (the router: E x hidden floats a
// layer, 7.3 MB at V3's shapes).
absl::Status CudaBackend::LinearF32(const float* x, const Array<bf16>& w, int64_t rows,
                                   int64_t in, int64_t out, float* y) {
  if (rows == 0 || out == 0) return absl::OkStatus();
  if (!Aligned(x) || !Aligned(y) || w.size() < out * in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LinearF32: x and y must be 256-byte aligned (scratch) and the weight hold ", out * in,
        " values, got ", w.size()));
  }
  auto make = [&]() -> absl::StatusOr<std::shared_ptr<void>> {
    MLA_ASSIGN_OR_RETURN(std::shared_ptr<void> wide,
                         Allocate(out * in * static_cast<int64_t>(sizeof(float))));
    MLA_RETURN_IF_ERROR(
        cu::WidenBf16(w.data(), out * in, static_cast<float*>(wide.get()), stream_));
    return wide;
  };
  MLA_ASSIGN_OR_RETURN(void* wide, DerivedOf(widened_, w.data(), w.owner(), make));
  return cu::LinearF32(*linear_, x, static_cast<const float*>(wide), rows, in, out, y, stream_);
}

absl::Status CudaBackend::Copy2D(const float* src, int64_t src_stride, int64_t rows,
                                 int64_t cols, float* dst, int64_t dst_stride) {
  if (rows == 0 || cols == 0) return absl::OkStatus();
  constexpr size_t f = sizeof(float);
  return CudaStatus(cudaMemcpy2DAsync(dst, dst_stride * f, src, src_stride * f, cols * f,
                                      static_cast<size_t>(rows), cudaMemcpyDeviceToDevice,
                                      stream_),
                    "Copy2D: cudaMemcpy2DAsync");
}

absl::Status CudaBackend::PartialToFloat(Partial p, float* out) {
  if (p.count == 0 || p.data == out) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(out, p.data, p.count * sizeof(float),
                                    cudaMemcpyDeviceToDevice, stream_),
                    "PartialToFloat: cudaMemcpyAsync");
}

absl::StatusOr<std::vector<int32_t>> CudaBackend::Sample(
    const float* logits, int64_t rows, int64_t vocab,
    const std::vector<kernels::SamplingParams>& params, const std::vector<uint64_t>& steps) {
  if (static_cast<int64_t>(params.size()) != rows || static_cast<int64_t>(steps.size()) != rows) {
    return absl::InvalidArgumentError(absl::StrCat("Sample: ", rows, " rows but ", params.size(),
                                                   " params and ", steps.size(), " steps"));
  }
  std::vector<int32_t> tokens(rows);
  if (rows == 0) return tokens;
  MLA_RETURN_IF_ERROR(UseDevice());
  auto it = sample_plans_.find({rows, vocab});
  if (it == sample_plans_.end()) {
    MLA_ASSIGN_OR_RETURN(cu::SamplePlan plan, cu::PlanSample(rows, vocab));
    it = sample_plans_.emplace(std::make_pair(rows, vocab), plan).first;
  }
  const cu::SamplePlan& plan = it->second;
  MLA_ASSIGN_OR_RETURN(auto* d_params, Scratch<kernels::SamplingParams>(rows));
  MLA_ASSIGN_OR_RETURN(auto* d_steps, Scratch<uint64_t>(rows));
  MLA_ASSIGN_OR_RETURN(auto* d_tokens, Scratch<int32_t>(rows));
  // The host vectors outlive the copies: CopyToHost below waits for the stream.
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(d_params, params.data(),
                                                 rows * sizeof(kernels::SamplingParams),
                                                 cudaMemcpyHostToDevice, stream_),
                                 "Sample: cudaMemcpyAsync of the params"));
  MLA_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(d_steps, steps.data(), rows * sizeof(uint64_t),
                                                 cudaMemcpyHostToDevice, stream_),
                                 "Sample: cudaMemcpyAsync of the steps"));
  MLA_ASSIGN_OR_RETURN(char* workspace, OpWorkspace(static_cast<int64_t>(plan.workspace_bytes)));
  MLA_RETURN_IF_ERROR(cu::Sample(logits, d_params, d_steps, plan, workspace, d_tokens, stream_));
  MLA_RETURN_IF_ERROR(CopyToHost(d_tokens, rows * sizeof(int32_t), tokens.data()));
  return tokens;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device) {
  return CudaBackend::Create(device);
}

}  // namespace mla
