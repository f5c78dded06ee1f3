// Model::Forward: embed → layers (pre-norm residual blocks) → final norm → lm_head → sample,
// as Backend ops (layers.h) and collectives on the backend's memory.
#include "worker/model.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/cpu_backend.h"
#include "worker/flat_batch.h"
#include "worker/layers.h"
#include "worker/model_weights.h"
#include "worker/status_macros.h"

namespace mla {

struct Model::Impl {
  std::shared_ptr<Backend> backend;
  ModelWeights w;
  AttentionConstants attention;
  ModelComms comms;

  // Gathers vocab-parallel logits [rows, V / tp] from every rank into [rows, V].
  absl::StatusOr<float*> GatherVocab(float* local, int64_t rows);
};

absl::StatusOr<float*> Model::Impl::GatherVocab(float* local, int64_t rows) {
  if (comms.tp == nullptr) return local;
  const int64_t tp = comms.tp->size(), part = w.vocab_end - w.vocab_begin;
  MLA_ASSIGN_OR_RETURN(float* gathered, backend->Scratch<float>(tp * rows * part));
  MLA_ASSIGN_OR_RETURN(float* logits, backend->Scratch<float>(rows * tp * part));
  MLA_RETURN_IF_ERROR(backend->AllGather(comms.tp, local, rows * part, gathered));
  for (int64_t r = 0; r < tp; ++r) {  // rank r's block of columns of every row
    MLA_RETURN_IF_ERROR(
        backend->Copy2D(gathered + r * rows * part, part, rows, part, logits + r * part, tp * part));
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
                                                   const ModelComms& comms,
                                                   std::shared_ptr<Backend> backend) {
  auto impl = std::make_unique<Impl>();
  impl->backend = backend != nullptr ? std::move(backend) : MakeCpuBackend();
  MLA_ASSIGN_OR_RETURN(impl->w, LoadModelWeights(checkpoint, shard, *impl->backend));
  MLA_RETURN_IF_ERROR(CheckComms(impl->w, comms));
  impl->comms = comms;
  MLA_ASSIGN_OR_RETURN(impl->attention, MakeAttentionConstants(impl->w.config, *impl->backend));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->w.config; }
const ShardSpec& Model::shard() const { return impl_->w.shard; }
int64_t Model::num_local_layers() const { return static_cast<int64_t>(impl_->w.layers.size()); }
Backend& Model::backend() { return *impl_->backend; }

absl::StatusOr<std::unique_ptr<LatentCachePool>> Model::NewCache(int64_t num_blocks) {
  const ModelConfig& c = config();
  return LatentCachePool::Create(*impl_->backend, num_local_layers(), num_blocks, c.kv_lora_rank,
                                 c.qk_rope_head_dim);
}

absl::StatusOr<StepOutput> Model::Forward(const StepBatch& batch, LatentCachePool& cache,
                                          const ForwardOptions& options) {
  const ModelWeights& w = impl_->w;
  const ModelConfig& c = w.config;
  Backend& be = *impl_->backend;
  if (cache.num_layers() != num_local_layers()) {
    return absl::InvalidArgumentError(absl::StrCat("cache has ", cache.num_layers(),
                                                   " layers, the shard ", num_local_layers()));
  }
  MLA_ASSIGN_OR_RETURN(const FlatBatch b, FlattenBatch(batch, c, cache.num_blocks()));
  MLA_ASSIGN_OR_RETURN(const StepIndex index, be.BeginStep(b));
  const LayerStep step{.backend = be, .config = c, .batch = b, .index = index};
  const int64_t T = b.num_tokens, d = c.hidden_size;

  MLA_ASSIGN_OR_RETURN(float* h, be.Scratch<float>(T * d));
  MLA_ASSIGN_OR_RETURN(float* normed, be.Scratch<float>(T * d));
  MLA_ASSIGN_OR_RETURN(float* delta, be.Scratch<float>(T * d));
  // A layer's output, summed over the tp group and rounded to float once, into delta.
  MLA_ASSIGN_OR_RETURN(const Partial partial, be.ScratchPartial(T * d));
  auto reduce_into_delta = [&]() -> absl::Status {
    MLA_RETURN_IF_ERROR(be.AllReducePartial(impl_->comms.tp, partial));
    return be.PartialToFloat(partial, delta);
  };
  if (w.first_stage()) {  // vocab-parallel embedding: each rank looks up its rows
    MLA_RETURN_IF_ERROR(
        be.Embed(w.embed.data(), index.tokens, T, d, w.vocab_begin, w.vocab_end, h));
    MLA_RETURN_IF_ERROR(be.AllReduce(impl_->comms.tp, h, T * d));
  } else {
    MLA_RETURN_IF_ERROR(be.Recv(impl_->comms.pp_prev, h, T * d, 0));
  }
  for (int64_t i = 0; i < num_local_layers(); ++i) {
    const LayerWeights& layer = w.layers[i];
    // h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)).
    MLA_RETURN_IF_ERROR(be.RmsNorm(h, layer.input_norm.data(), T, d, c.rms_norm_eps, normed));
    MLA_RETURN_IF_ERROR(MlaAttentionForward(step, layer.attn, w.local_heads, impl_->attention,
                                            cache.Layer(i), normed, partial));
    MLA_RETURN_IF_ERROR(reduce_into_delta());
    MLA_RETURN_IF_ERROR(
        be.AddRmsNorm(h, delta, layer.post_attn_norm.data(), T, d, c.rms_norm_eps, normed));
    if (layer.moe) {
      MLA_RETURN_IF_ERROR(MoeForward(be, *layer.moe, c, normed, T, partial));
    } else {
      MLA_RETURN_IF_ERROR(MlpForward(be, *layer.dense, d, normed, T, partial));
    }
    MLA_RETURN_IF_ERROR(reduce_into_delta());  // routed + shared experts in one sum
    MLA_RETURN_IF_ERROR(be.Add(delta, T * d, h));
  }

  if (!w.last_stage()) {
    MLA_RETURN_IF_ERROR(be.Send(impl_->comms.pp_next, h, T * d, 1));
    return StepOutput{};
  }

  // Logits only for the last row of each sequence that samples.
  const int64_t S = static_cast<int64_t>(b.sample_rows.size()), V = c.vocab_size;
  const int64_t V_local = w.vocab_end - w.vocab_begin;
  MLA_ASSIGN_OR_RETURN(float* last, be.Scratch<float>(S * d));
  MLA_ASSIGN_OR_RETURN(float* local, be.Scratch<float>(S * V_local));
  MLA_RETURN_IF_ERROR(be.GatherRows(h, index.sample_rows, S, 1, d, last));
  MLA_RETURN_IF_ERROR(be.RmsNorm(last, w.final_norm.data(), S, d, c.rms_norm_eps, last));
  MLA_RETURN_IF_ERROR(be.Linear(last, w.lm_head.data(), S, d, V_local, local));
  MLA_ASSIGN_OR_RETURN(float* logits, impl_->GatherVocab(local, S));

  std::vector<kernels::SamplingParams> params(S);
  std::vector<uint64_t> steps(S);
  StepOutput out;
  for (int64_t s = 0; s < S; ++s) {
    const SequenceStep& seq = batch.seqs[b.sample_seqs[s]];
    out.seq_ids.push_back(seq.seq_id);
    params[s] = seq.sampling;
    steps[s] = seq.sample_index;
  }
  MLA_ASSIGN_OR_RETURN(out.tokens, be.Sample(logits, S, V, params, steps));
  if (options.return_logits) {
    out.logits.resize(S * V);
    MLA_RETURN_IF_ERROR(be.CopyToHost(logits, S * V * sizeof(float), out.logits.data()));
  }
  return out;
}

}  // namespace mla
