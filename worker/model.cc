// Model::Forward: embed → layers (pre-norm residual blocks) → final norm → lm_head → sample.
#include "worker/model.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/ops.h"
#include "worker/flat_batch.h"
#include "worker/layers.h"
#include "worker/model_weights.h"
#include "worker/status_macros.h"

namespace mla {

namespace ops = kernels::cpu;

struct Model::Impl {
  ModelWeights w;
  AttentionConstants attention;
  ModelComms comms;

  // Sums a partial result over the tensor-parallel group.
  template <typename T>
  absl::Status ReduceTp(std::vector<T>& x) {
    return comms.tp == nullptr ? absl::OkStatus()
                               : comms.tp->AllReduceSum(x.data(), static_cast<int64_t>(x.size()));
  }
  // Gathers vocab-parallel logits [rows, V / tp] from every rank into [rows, V].
  absl::StatusOr<std::vector<float>> GatherVocab(const std::vector<float>& local, int64_t rows);
};

absl::StatusOr<std::vector<float>> Model::Impl::GatherVocab(const std::vector<float>& local,
                                                            int64_t rows) {
  if (comms.tp == nullptr) return local;
  const int64_t tp = comms.tp->size(), part = w.vocab_end - w.vocab_begin;
  std::vector<float> gathered(tp * rows * part), logits(rows * tp * part);
  MLA_RETURN_IF_ERROR(
      comms.tp->AllGather(local.data(), static_cast<int64_t>(local.size()), gathered.data()));
  for (int64_t r = 0; r < tp; ++r) {
    for (int64_t s = 0; s < rows; ++s) {
      std::copy_n(gathered.data() + (r * rows + s) * part, part,
                  logits.data() + s * tp * part + r * part);
    }
  }
  return logits;
}

namespace {

absl::Status CheckComms(const ModelWeights& w, const ModelComms& comms) {
  const ShardSpec& s = w.shard;
  if (s.tp_size > 1 &&
      (comms.tp == nullptr || comms.tp->size() != s.tp_size || comms.tp->rank() != s.tp_rank)) {
    return absl::InvalidArgumentError(absl::StrCat("tp_size ", s.tp_size, ", tp_rank ", s.tp_rank,
                                                   " needs a tensor-parallel group of that size "
                                                   "and rank"));
  }
  if (!w.first_stage() && comms.pp_prev == nullptr) {
    return absl::InvalidArgumentError("a stage after the first needs pp_prev");
  }
  if (!w.last_stage() && comms.pp_next == nullptr) {
    return absl::InvalidArgumentError("a stage before the last needs pp_next");
  }
  return absl::OkStatus();
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const Checkpoint& checkpoint,
                                                   const ShardSpec& shard,
                                                   const ModelComms& comms) {
  auto impl = std::make_unique<Impl>();
  MLA_ASSIGN_OR_RETURN(impl->w, LoadModelWeights(checkpoint, shard));
  MLA_RETURN_IF_ERROR(CheckComms(impl->w, comms));
  impl->comms = comms;
  impl->attention = MakeAttentionConstants(impl->w.config);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->w.config; }
const ShardSpec& Model::shard() const { return impl_->w.shard; }
int64_t Model::num_local_layers() const { return static_cast<int64_t>(impl_->w.layers.size()); }

absl::StatusOr<StepOutput> Model::Forward(const StepBatch& batch, LatentCachePool& cache,
                                          const ForwardOptions& options) {
  const ModelWeights& w = impl_->w;
  const ModelConfig& c = w.config;
  if (cache.num_layers() != num_local_layers()) {
    return absl::InvalidArgumentError(absl::StrCat("cache has ", cache.num_layers(),
                                                   " layers, the shard ", num_local_layers()));
  }
  MLA_ASSIGN_OR_RETURN(const FlatBatch b, FlattenBatch(batch, c, cache.num_blocks()));
  const int64_t T = b.num_tokens, d = c.hidden_size;

  std::vector<float> h(T * d), normed(T * d), delta(T * d);
  std::vector<double> partial(T * d);  // a layer's output, summed over the tp group
  auto reduce_into_delta = [&]() -> absl::Status {
    MLA_RETURN_IF_ERROR(impl_->ReduceTp(partial));
    std::copy(partial.begin(), partial.end(), delta.begin());  // one rounding to float
    return absl::OkStatus();
  };
  if (w.first_stage()) {  // vocab-parallel embedding: each rank looks up its rows
    ops::Embed(w.embed.data(), b.tokens.data(), T, d, w.vocab_begin, w.vocab_end, h.data());
    MLA_RETURN_IF_ERROR(impl_->ReduceTp(h));
  } else {
    MLA_RETURN_IF_ERROR(impl_->comms.pp_prev->Recv(h.data(), T * d, 0));
  }
  for (int64_t i = 0; i < num_local_layers(); ++i) {
    const LayerWeights& layer = w.layers[i];
    // h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)).
    ops::RmsNorm(h.data(), layer.input_norm.data(), T, d, c.rms_norm_eps, normed.data());
    MlaAttentionForward(layer.attn, c, w.local_heads, impl_->attention, b, cache.Layer(i),
                        normed.data(), partial.data());
    MLA_RETURN_IF_ERROR(reduce_into_delta());
    ops::AddRmsNorm(h.data(), delta.data(), layer.post_attn_norm.data(), T, d, c.rms_norm_eps,
                    normed.data());
    if (layer.moe) {
      MoeForward(*layer.moe, c, normed.data(), T, partial.data());
    } else {
      MlpForward(*layer.dense, d, normed.data(), T, partial.data());
    }
    MLA_RETURN_IF_ERROR(reduce_into_delta());  // routed + shared experts in one sum
    for (int64_t j = 0; j < T * d; ++j) h[j] += delta[j];
  }

  if (!w.last_stage()) {
    MLA_RETURN_IF_ERROR(impl_->comms.pp_next->Send(h.data(), T * d, 1));
    return StepOutput{};
  }

  // Logits only for the last row of each sequence that samples.
  const int64_t S = static_cast<int64_t>(b.sample_rows.size()), V = c.vocab_size;
  const int64_t V_local = w.vocab_end - w.vocab_begin;
  std::vector<float> last(S * d), local(S * V_local);
  for (int64_t s = 0; s < S; ++s) {
    std::copy_n(h.data() + b.sample_rows[s] * d, d, last.data() + s * d);
  }
  ops::RmsNorm(last.data(), w.final_norm.data(), S, d, c.rms_norm_eps, last.data());
  ops::Linear(last.data(), w.lm_head.data(), S, d, V_local, local.data());
  MLA_ASSIGN_OR_RETURN(std::vector<float> logits, impl_->GatherVocab(local, S));

  StepOutput out;
  for (int64_t s = 0; s < S; ++s) {
    const SequenceStep& seq = batch.seqs[b.sample_seqs[s]];
    out.seq_ids.push_back(seq.seq_id);
    out.tokens.push_back(ops::Sample(logits.data() + s * V, V, seq.sampling, seq.sample_index));
  }
  if (options.return_logits) out.logits = std::move(logits);
  return out;
}

}  // namespace mla
