#include "worker/cuda_backend_step.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "worker/status_macros.h"

namespace mla {
namespace {

using kernels::cuda::CudaStatus;

int64_t AlignUp(int64_t bytes) {
  constexpr int64_t a = CudaScratchArena::kAlignment;
  return (bytes + a - 1) / a * a;
}

// One host array's place in the packed upload.
struct Segment {
  const void* host;
  int64_t bytes;
  int64_t offset = 0;
};

template <typename T>
Segment SegmentOf(const std::vector<T>& v) {
  return Segment{v.data(), static_cast<int64_t>(v.size() * sizeof(T))};
}

bool SameDims(const kernels::MlaDims& a, const kernels::MlaDims& b) {
  return a.heads == b.heads && a.d_latent == b.d_latent && a.d_rope == b.d_rope &&
         a.d_nope == b.d_nope && a.d_v == b.d_v;
}

absl::Status CheckBatch(const char* op, const char* which, const kernels::RaggedBatch& got,
                        const kernels::RaggedBatch& step) {
  if (got.num_seqs != step.num_seqs || got.q_start != step.q_start ||
      got.context_lens != step.context_lens || got.block_tables != step.block_tables ||
      got.max_blocks_per_seq != step.max_blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": params.batch (", got.num_seqs, " sequences) is not this step's StepIndex::", which,
        " (", step.num_seqs, " sequences): BeginStep plans only that batch"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaStepPlan>> CudaStepPlan::Create(int num_sms) {
  std::unique_ptr<CudaStepPlan> plan(new CudaStepPlan(num_sms));
  MLA_RETURN_IF_ERROR(CudaStatus(cudaEventCreateWithFlags(&plan->uploaded_, cudaEventDisableTiming),
                                 "BeginStep: cudaEventCreate"));
  return plan;
}

CudaStepPlan::~CudaStepPlan() {
  if (uploaded_ != nullptr) {
    cudaEventSynchronize(uploaded_);  // errors here have no one to report to
    cudaEventDestroy(uploaded_);
  }
  if (staging_ != nullptr) cudaFreeHost(staging_);
}

absl::StatusOr<char*> CudaStepPlan::Staging(int64_t bytes) {
  // The last step's upload may still read the buffer.
  MLA_RETURN_IF_ERROR(
      CudaStatus(cudaEventSynchronize(uploaded_), "BeginStep: cudaEventSynchronize"));
  if (bytes > staging_bytes_) {
    const int64_t size = std::max({bytes, 2 * staging_bytes_, int64_t{64} << 10});
    if (staging_ != nullptr) cudaFreeHost(staging_);
    staging_ = nullptr;
    staging_bytes_ = 0;
    void* fresh = nullptr;
    MLA_RETURN_IF_ERROR(CudaStatus(cudaMallocHost(&fresh, static_cast<size_t>(size)),
                                   "BeginStep: cudaMallocHost of the staging buffer"));
    staging_ = static_cast<char*>(fresh);
    staging_bytes_ = size;
  }
  return staging_;
}

absl::StatusOr<StepIndex> CudaStepPlan::Begin(const FlatBatch& b, const StepOptions& options,
                                              CudaScratchArena& arena, cudaStream_t stream) {
  begun_ = false;
  prefill_plan_.reset();
  decode_plan_.reset();
  prefill_workspace_ = nullptr;
  decode_launch_ = kernels::cuda::MlaDecodeLaunch{};
  const int64_t num_seqs = static_cast<int64_t>(b.order.size());
  const int64_t decode_seqs = num_seqs - b.prefill_seqs;

  // The decode plan is made here, so that its device copy travels with the arrays.
  if (num_seqs > 0 && options.attention.heads <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BeginStep: a step with sequences needs StepOptions::attention.heads > 0, got ",
        options.attention.heads));
  }
  if (decode_seqs > 0) {
    decode_plan_ = std::make_unique<kernels::cuda::MlaDecodePlan>(kernels::cuda::PlanMlaDecode(
        std::span<const int32_t>(b.decode_q_start),
        std::span<const int32_t>(b.context_lens).subspan(b.prefill_seqs),
        options.attention.heads, num_sms_));
    device_plan_ = kernels::cuda::DevicePlanOf(*decode_plan_);
  }

  // Pack every array, each 256-byte aligned, into one upload.
  enum { kTokens, kPositions, kSlots, kSampleRows, kQStart, kDecodeQStart, kContextLens,
         kBlockTables, kDecodePlan, kNumSegments };
  Segment segments[kNumSegments] = {
      SegmentOf(b.tokens),       SegmentOf(b.positions),
      SegmentOf(b.slots),        SegmentOf(b.sample_rows),
      SegmentOf(b.q_start),      SegmentOf(b.decode_q_start),
      SegmentOf(b.context_lens), SegmentOf(b.block_tables),
      Segment{&device_plan_, decode_seqs > 0 ? int64_t{sizeof(device_plan_)} : 0}};
  int64_t total = 0;
  for (Segment& s : segments) {
    s.offset = total;
    total += AlignUp(s.bytes);
  }
  MLA_ASSIGN_OR_RETURN(void* device, arena.Allocate(total));
  MLA_ASSIGN_OR_RETURN(char* host, Staging(total));
  for (const Segment& s : segments) {
    if (s.bytes > 0) std::memcpy(host + s.offset, s.host, static_cast<size_t>(s.bytes));
  }
  MLA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(device, host, static_cast<size_t>(total), cudaMemcpyHostToDevice, stream),
      "BeginStep: cudaMemcpyAsync of the step's index arrays"));
  MLA_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(uploaded_, stream), "BeginStep: cudaEventRecord"));

  auto at = [&](int segment) { return static_cast<char*>(device) + segments[segment].offset; };
  const auto* q_start = reinterpret_cast<const int32_t*>(at(kQStart));
  const auto* context_lens = reinterpret_cast<const int32_t*>(at(kContextLens));
  const auto* block_tables = reinterpret_cast<const int32_t*>(at(kBlockTables));
  index_ = StepIndex{
      .tokens = reinterpret_cast<const int32_t*>(at(kTokens)),
      .positions = reinterpret_cast<const int32_t*>(at(kPositions)),
      .slots = reinterpret_cast<const int64_t*>(at(kSlots)),
      .sample_rows = reinterpret_cast<const int32_t*>(at(kSampleRows)),
      // FlatBatch::Prefill(): the leading prefill_seqs sequences, rows from 0.
      .prefill = kernels::RaggedBatch{.num_seqs = b.prefill_seqs,
                                      .q_start = q_start,
                                      .context_lens = context_lens,
                                      .block_tables = block_tables,
                                      .max_blocks_per_seq = b.max_blocks},
      // FlatBatch::Decode(): the rest, rows renumbered from 0 by decode_q_start.
      .decode = kernels::RaggedBatch{
          .num_seqs = decode_seqs,
          .q_start = reinterpret_cast<const int32_t*>(at(kDecodeQStart)),
          .context_lens = context_lens + b.prefill_seqs,
          .block_tables = block_tables + b.prefill_seqs * b.max_blocks,
          .max_blocks_per_seq = b.max_blocks}};

  // The decode attention's launch: the plan's own grid and workspace, or, for a step of a graph
  // shape, the bounds of every plan of that many rows (a recording serves them all).
  if (decode_seqs > 0) {
    int64_t workspace_bytes = decode_plan_->workspace_bytes, grid_lanes = 0;
    if (options.graph_shape) {
      const kernels::cuda::MlaDecodeLaunchBounds bounds = kernels::cuda::MlaDecodeBoundsFor(
          b.num_tokens - b.prefill_tokens, options.attention.heads);
      workspace_bytes = bounds.workspace_bytes;
      grid_lanes = bounds.grid_lanes;
    }
    void* workspace = nullptr;
    if (workspace_bytes > 0) {
      MLA_ASSIGN_OR_RETURN(workspace, arena.Allocate(workspace_bytes));
    }
    decode_launch_ = kernels::cuda::MlaDecodeLaunch{
        .device_plan =
            reinterpret_cast<const kernels::cuda::MlaDecodeDevicePlan*>(at(kDecodePlan)),
        .workspace = workspace,
        .workspace_bytes = workspace_bytes,
        .grid_lanes = grid_lanes};
  }

  // The prefill attention's plan and workspace, for the same reason: made before the layers.
  if (b.prefill_seqs > 0) {
    int64_t context_tokens = 0;
    for (int64_t s = 0; s < b.prefill_seqs; ++s) context_tokens += b.context_lens[s];
    prefill_plan_ = kernels::cuda::PlanMlaPrefill(b.prefill_seqs, b.prefill_tokens,
                                                  context_tokens, options.attention);
    prefill_dims_ = options.attention;
    MLA_ASSIGN_OR_RETURN(prefill_workspace_,
                         arena.Allocate(static_cast<int64_t>(prefill_plan_->workspace_bytes)));
  }
  begun_ = true;
  return index_;
}

absl::StatusOr<CudaStepPlan::PrefillRun> CudaStepPlan::Prefill(
    const kernels::MlaDims& dims, const kernels::RaggedBatch& batch) {
  if (!begun_) return absl::FailedPreconditionError("MlaPrefillAttention before BeginStep");
  MLA_RETURN_IF_ERROR(CheckBatch("MlaPrefillAttention", "prefill", batch, index_.prefill));
  if (!prefill_plan_ || !SameDims(prefill_dims_, dims)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaPrefillAttention: dims (", dims.heads,
        " heads) are not the ones BeginStep planned the step for (StepOptions::attention, ",
        prefill_dims_.heads, " heads)"));
  }
  return PrefillRun{.plan = &*prefill_plan_, .workspace = prefill_workspace_};
}

absl::StatusOr<CudaStepPlan::DecodeRun> CudaStepPlan::Decode(const kernels::MlaDims& dims,
                                                             const kernels::RaggedBatch& batch) {
  if (!begun_) return absl::FailedPreconditionError("MlaDecodeAttention before BeginStep");
  MLA_RETURN_IF_ERROR(CheckBatch("MlaDecodeAttention", "decode", batch, index_.decode));
  if (decode_plan_ == nullptr || dims.heads != decode_plan_->heads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlaDecodeAttention: dims.heads is ", dims.heads, " but BeginStep planned the step for ",
        decode_plan_ != nullptr ? decode_plan_->heads : 0, " heads (StepOptions)"));
  }
  return DecodeRun{.plan = decode_plan_.get(), .launch = decode_launch_};
}

}  // namespace mla
