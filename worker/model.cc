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
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const Checkpoint& checkpoint,
                                                   const ShardSpec& shard) {
  if (shard.tp_size != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_size ", shard.tp_size, ": an in-process model has one rank"));
  }
  auto impl = std::make_unique<Impl>();
  MLA_ASSIGN_OR_RETURN(impl->w, LoadModelWeights(checkpoint, shard));
  if (!impl->w.first_stage() || !impl->w.last_stage()) {
    return absl::InvalidArgumentError("an in-process model holds every layer");
  }
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
  ops::Embed(w.embed.data(), b.tokens.data(), T, d, w.vocab_begin, w.vocab_end, h.data());
  for (int64_t i = 0; i < num_local_layers(); ++i) {
    const LayerWeights& layer = w.layers[i];
    // h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)).
    ops::RmsNorm(h.data(), layer.input_norm.data(), T, d, c.rms_norm_eps, normed.data());
    MlaAttentionForward(layer.attn, c, w.local_heads, impl_->attention, b, cache.Layer(i),
                        normed.data(), delta.data());
    ops::AddRmsNorm(h.data(), delta.data(), layer.post_attn_norm.data(), T, d, c.rms_norm_eps,
                    normed.data());
    if (layer.moe) {
      MoeForward(*layer.moe, c, normed.data(), T, delta.data());
    } else {
      MlpForward(*layer.dense, d, normed.data(), T, delta.data());
    }
    for (int64_t j = 0; j < T * d; ++j) h[j] += delta[j];
  }

  // Logits only for the last row of each sequence that samples.
  const int64_t S = static_cast<int64_t>(b.sample_rows.size()), V = c.vocab_size;
  std::vector<float> last(S * d), logits(S * V);
  for (int64_t s = 0; s < S; ++s) {
    std::copy_n(h.data() + b.sample_rows[s] * d, d, last.data() + s * d);
  }
  ops::RmsNorm(last.data(), w.final_norm.data(), S, d, c.rms_norm_eps, last.data());
  ops::Linear(last.data(), w.lm_head.data(), S, d, V, logits.data());

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
