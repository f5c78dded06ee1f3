// CpuBackend: each op is its kernels::cpu twin; scratch is a list of host blocks per step.
#include "worker/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"

namespace mla {
namespace {

namespace ops = kernels::cpu;

double* AsDouble(Partial p) { return static_cast<double*>(p.data); }

class CpuBackend final : public Backend {
 public:
  std::string Describe() const override { return "cpu"; }
  int device() const override { return -1; }

  absl::StatusOr<std::shared_ptr<void>> Allocate(int64_t bytes) override {
    void* p = std::aligned_alloc(kAlign, RoundUp(std::max<int64_t>(bytes, 1)));
    if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("host allocation of ", bytes, " bytes"));
    return std::shared_ptr<void>(p, std::free);
  }
  absl::Status CopyToBackend(const void* host, int64_t bytes, void* dst) override {
    if (bytes > 0) std::memcpy(dst, host, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(const void* src, int64_t bytes, void* host) override {
    if (bytes > 0) std::memcpy(host, src, bytes);
    return absl::OkStatus();
  }
  absl::Status FillBytes(void* dst, uint8_t value, int64_t bytes) override {
    if (bytes > 0) std::memset(dst, value, bytes);
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> FreeMemoryBytes() override {
    return absl::UnimplementedError("the CPU backend does not size its cache from free memory");
  }

  ScratchMark MarkScratch() override {
    return ScratchMark{.used = static_cast<int64_t>(scratch_.size())};
  }
  absl::Status ReleaseScratch(const ScratchMark& mark) override {
    if (mark.used > static_cast<int64_t>(scratch_.size())) {
      return absl::FailedPreconditionError("ReleaseScratch: the mark is past the scratch");
    }
    scratch_.resize(mark.used);  // the ops before ran synchronously
    return absl::OkStatus();
  }
  absl::StatusOr<StepIndex> BeginStep(const FlatBatch& b,
                                      const StepOptions& /*options*/) override {
    scratch_.clear();
    return StepIndex{.tokens = b.tokens.data(),
                     .positions = b.positions.data(),
                     .slots = b.slots.data(),
                     .sample_rows = b.sample_rows.data(),
                     .prefill = b.Prefill(),
                     .decode = b.Decode()};
  }

  absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out,
                      float* y) override {
    ops::Linear(x, w, rows, in, out, y);
    return absl::OkStatus();
  }
  // The CPU's Linear already keeps x in float32.
  absl::Status LinearF32(const float* x, const Array<bf16>& w, int64_t rows, int64_t in,
                         int64_t out, float* y) override {
    return Linear(x, w.data(), rows, in, out, y);
  }
  absl::Status Linear(const float* x, const bf16* w, int64_t rows, int64_t in, int64_t out,
                      Partial y) override {
    ops::Linear(x, w, rows, in, out, AsDouble(y));
    return absl::OkStatus();
  }
  absl::Status RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) override {
    ops::RmsNorm(x, weight, rows, dim, eps, y);
    return absl::OkStatus();
  }
  absl::Status AddRmsNorm(float* residual, const float* delta, const float* weight, int64_t rows,
                          int64_t dim, float eps, float* y) override {
    ops::AddRmsNorm(residual, delta, weight, rows, dim, eps, y);
    return absl::OkStatus();
  }
  absl::Status ApplyRope(float* x, int64_t rows, int64_t heads, int64_t row_stride,
                         int64_t head_stride, const int32_t* positions, const float* inv_freq,
                         int64_t rope_dim, float cos_sin_scale) override {
    ops::ApplyRope(x, rows, heads, row_stride, head_stride, positions, inv_freq, rope_dim,
                   cos_sin_scale);
    return absl::OkStatus();
  }
  absl::Status SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    ops::SiluMul(gate, up, n, out);
    return absl::OkStatus();
  }
  absl::Status Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
                     int64_t vocab_begin, int64_t vocab_end, float* out) override {
    ops::Embed(table, ids, tokens, dim, vocab_begin, vocab_end, out);
    return absl::OkStatus();
  }
  absl::Status WriteLatentCache(const kernels::LatentWrite& in,
                                const kernels::LatentCache& cache) override {
    ops::WriteLatentCache(in, cache);
    return absl::OkStatus();
  }
  absl::Status MlaPrefillAttention(const kernels::MlaPrefillParams& params) override {
    ops::MlaPrefillAttention(params);
    return absl::OkStatus();
  }
  absl::Status MlaAbsorbQuery(const float* q, const bf16* wkv_b, int64_t tokens,
                              const kernels::MlaDims& dims, float* q_abs) override {
    ops::MlaAbsorbQuery(q, wkv_b, tokens, dims, q_abs);
    return absl::OkStatus();
  }
  absl::Status MlaDecodeAttention(const kernels::MlaDecodeParams& params) override {
    ops::MlaDecodeAttention(params);
    return absl::OkStatus();
  }
  absl::Status MlaUnabsorbOutput(const float* latent_out, const bf16* wkv_b, int64_t tokens,
                                 const kernels::MlaDims& dims, float* out) override {
    ops::MlaUnabsorbOutput(latent_out, wkv_b, tokens, dims, out);
    return absl::OkStatus();
  }
  absl::Status MoeGate(const float* logits, const float* bias, int64_t tokens,
                       const kernels::MoeRouting& routing, int32_t* expert_ids,
                       float* weights) override {
    ops::MoeGate(logits, bias, tokens, routing, expert_ids, weights);
    return absl::OkStatus();
  }
  absl::Status MoeDispatch(const int32_t* expert_ids, int64_t tokens, int64_t top_k,
                           int64_t num_experts, int32_t* expert_offsets,
                           int32_t* sorted_pairs) override {
    ops::MoeDispatch(expert_ids, tokens, top_k, num_experts, expert_offsets, sorted_pairs);
    return absl::OkStatus();
  }
  absl::Status MoeCombine(const float* expert_out, const int32_t* sorted_pairs,
                          const float* weights, int64_t count, int64_t /*tokens*/, int64_t top_k,
                          int64_t dim, Partial out) override {
    ops::MoeCombine(expert_out, sorted_pairs, weights, count, top_k, dim, AsDouble(out));
    return absl::OkStatus();
  }
  absl::Status GatherRows(const float* x, const int32_t* index, int64_t count, int64_t divisor,
                          int64_t dim, float* out) override {
    for (int64_t j = 0; j < count; ++j) {
      std::copy_n(x + (index[j] / divisor) * dim, dim, out + j * dim);
    }
    return absl::OkStatus();
  }
  absl::Status Copy2D(const float* src, int64_t src_stride, int64_t rows, int64_t cols,
                      float* dst, int64_t dst_stride) override {
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(src + r * src_stride, cols, dst + r * dst_stride);
    }
    return absl::OkStatus();
  }
  absl::Status Add(const float* x, int64_t n, float* y) override {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
    return absl::OkStatus();
  }
  absl::Status ZeroPartial(Partial p) override {
    std::fill_n(AsDouble(p), p.count, 0.0);
    return absl::OkStatus();
  }
  absl::Status PartialToFloat(Partial p, float* out) override {
    std::copy_n(AsDouble(p), p.count, out);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<int32_t>> Sample(const float* logits, int64_t rows, int64_t vocab,
                                              const std::vector<kernels::SamplingParams>& params,
                                              const std::vector<uint64_t>& steps) override {
    std::vector<int32_t> tokens(rows);
    for (int64_t r = 0; r < rows; ++r) {
      tokens[r] = ops::Sample(logits + r * vocab, vocab, params[r], steps[r]);
    }
    return tokens;
  }

 protected:
  absl::Status RunCollective(Communicator& /*comm*/,
                             absl::FunctionRef<absl::Status()> call) override {
    return call();
  }
  absl::StatusOr<void*> ScratchBytes(int64_t bytes) override {
    absl::StatusOr<std::shared_ptr<void>> block = Allocate(bytes);
    if (!block.ok()) return block.status();
    scratch_.push_back(*std::move(block));
    return scratch_.back().get();
  }
  int64_t PartialElementBytes() const override { return sizeof(double); }
  absl::StatusOr<std::shared_ptr<void>> PlaceBytes(std::shared_ptr<void> owner, const void* host,
                                                   int64_t /*bytes*/) override {
    return std::shared_ptr<void>(std::move(owner), const_cast<void*>(host));
  }

 private:
  static constexpr int64_t kAlign = 256;
  static int64_t RoundUp(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  std::vector<std::shared_ptr<void>> scratch_;  // this step's
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace mla
