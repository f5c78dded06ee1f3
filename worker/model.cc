// Model::Forward: embed → layers (pre-norm residual blocks) → final norm → lm_head → sample,
// as Backend ops (layers.h) and collectives on the backend's memory.
#include "worker/model.h"

#include <map>
#include <optional>
#include <set>
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
  // Step graphs: the shapes seen once (run as they come, sizing the scratch), those recorded,
  // with where their recording leaves the logits, and the recordings that failed per shape (a
  // shape that cannot be recorded, e.g. an op that needs the host, stops being tried).
  std::set<GraphShape> seen;
  std::map<GraphShape, float*> recorded;
  std::map<GraphShape, int> failed;

  // Gathers vocab-parallel logits [rows, V / tp] from every rank into [rows, V].
  absl::StatusOr<float*> GatherVocab(float* local, int64_t rows);
  // The ops of a step from the embedding (or the hidden states received) to the logits of
  // b.sample_rows (last stage; null on other stages, which send their hidden states on).
  absl::StatusOr<float*> Body(const LayerStep& step, LatentCachePool& cache);
  // Body, run, recorded and replayed, or replayed (see Forward).
  absl::StatusOr<float*> RunGraphed(const LayerStep& step, LatentCachePool& cache,
                                    const GraphShape& shape);
  // Whether this worker is one of a tensor- or pipeline-parallel group.
  bool Grouped() const {
    return comms.tp != nullptr || comms.pp_prev != nullptr || comms.pp_next != nullptr;
  }
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

// Recording a shape is given up after this many failures: each costs a step's host work twice.
constexpr int kMaxFailedRecordings = 2;

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
int64_t Model::num_step_graphs() const { return static_cast<int64_t>(impl_->recorded.size()); }

absl::StatusOr<std::unique_ptr<LatentCachePool>> Model::NewCache(int64_t num_blocks) {
  const ModelConfig& c = config();
  return LatentCachePool::Create(*impl_->backend, num_local_layers(), num_blocks, c.kv_lora_rank,
                                 c.qk_rope_head_dim);
}

absl::StatusOr<float*> Model::Impl::Body(const LayerStep& step, LatentCachePool& cache) {
  const ModelConfig& c = w.config;
  const FlatBatch& b = step.batch;
  const StepIndex& index = step.index;
  Backend& be = *backend;
  const int64_t T = b.num_tokens, d = c.hidden_size;

  MLA_ASSIGN_OR_RETURN(float* h, be.Scratch<float>(T * d));
  MLA_ASSIGN_OR_RETURN(float* normed, be.Scratch<float>(T * d));
  MLA_ASSIGN_OR_RETURN(float* delta, be.Scratch<float>(T * d));
  // A layer's output, summed over the tp group and rounded to float once, into delta.
  MLA_ASSIGN_OR_RETURN(const Partial partial, be.ScratchPartial(T * d));
  auto reduce_into_delta = [&]() -> absl::Status {
    MLA_RETURN_IF_ERROR(be.AllReducePartial(comms.tp, partial));
    return be.PartialToFloat(partial, delta);
  };
  if (w.first_stage()) {  // vocab-parallel embedding: each rank looks up its rows
    MLA_RETURN_IF_ERROR(
        be.Embed(w.embed.data(), index.tokens, T, d, w.vocab_begin, w.vocab_end, h));
    MLA_RETURN_IF_ERROR(be.AllReduce(comms.tp, h, T * d));
  } else {
    MLA_RETURN_IF_ERROR(be.Recv(comms.pp_prev, h, T * d, 0));
  }
  for (int64_t i = 0; i < static_cast<int64_t>(w.layers.size()); ++i) {
    const LayerWeights& layer = w.layers[i];
    const ScratchMark layer_scratch = be.MarkScratch();  // the layer's temporaries, reused
    // h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)).
    MLA_RETURN_IF_ERROR(be.RmsNorm(h, layer.input_norm.data(), T, d, c.rms_norm_eps, normed));
    MLA_RETURN_IF_ERROR(MlaAttentionForward(step, layer.attn, w.local_heads, attention,
                                            cache.Layer(i), normed, partial));
    MLA_RETURN_IF_ERROR(reduce_into_delta());
    MLA_RETURN_IF_ERROR(
        be.AddRmsNorm(h, delta, layer.post_attn_norm.data(), T, d, c.rms_norm_eps, normed));
    if (layer.moe) {
      MLA_RETURN_IF_ERROR(MoeForward(be, *layer.moe, c, normed, T, step.routing, partial));
    } else {
      MLA_RETURN_IF_ERROR(MlpForward(be, *layer.dense, d, normed, T, partial));
    }
    MLA_RETURN_IF_ERROR(reduce_into_delta());  // routed + shared experts in one sum
    MLA_RETURN_IF_ERROR(be.Add(delta, T * d, h));
    MLA_RETURN_IF_ERROR(be.ReleaseScratch(layer_scratch));
  }

  if (!w.last_stage()) {
    MLA_RETURN_IF_ERROR(be.Send(comms.pp_next, h, T * d, 1));
    return nullptr;
  }
  // Logits only for the last row of each sequence that samples (and a padded batch's rows).
  const int64_t S = static_cast<int64_t>(b.sample_rows.size());
  const int64_t V_local = w.vocab_end - w.vocab_begin;
  MLA_ASSIGN_OR_RETURN(float* last, be.Scratch<float>(S * d));
  MLA_ASSIGN_OR_RETURN(float* local, be.Scratch<float>(S * V_local));
  MLA_RETURN_IF_ERROR(be.GatherRows(h, index.sample_rows, S, 1, d, last));
  MLA_RETURN_IF_ERROR(be.RmsNorm(last, w.final_norm.data(), S, d, c.rms_norm_eps, last));
  MLA_RETURN_IF_ERROR(be.Linear(last, w.lm_head.data(), S, d, V_local, local));
  return GatherVocab(local, S);
}

absl::StatusOr<float*> Model::Impl::RunGraphed(const LayerStep& step, LatentCachePool& cache,
                                               const GraphShape& shape) {
  Backend& be = *backend;
  if (auto it = recorded.find(shape); it != recorded.end()) {
    MLA_ASSIGN_OR_RETURN(const bool replayed, be.Replay(shape));
    if (replayed) return it->second;
    recorded.erase(it);  // dropped by the backend (its memory moved): record it again later
    seen.erase(shape);
  } else if (seen.contains(shape) && failed[shape] < kMaxFailedRecordings) {
    // Second sighting: the scratch has grown to the step's size, so record it now.
    MLA_RETURN_IF_ERROR(be.BeginCapture());
    absl::StatusOr<float*> logits = Body(step, cache);
    MLA_ASSIGN_OR_RETURN(const bool kept, be.EndCapture(shape, logits.ok()));
    if (kept) {
      recorded[shape] = *logits;
      MLA_ASSIGN_OR_RETURN(const bool replayed, be.Replay(shape));
      if (replayed) return *logits;
      recorded.erase(shape);
    }
    ++failed[shape];
    seen.erase(shape);  // not recordable now: run it, and try again after another sighting
  }
  seen.insert(shape);
  return Body(step, cache);
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
  MLA_ASSIGN_OR_RETURN(FlatBatch b, FlattenBatch(batch, c, cache.num_blocks()));
  if (options.routing != nullptr && impl_->Grouped()) {
    return absl::InvalidArgumentError("a routing trace needs a model on one worker (tp = pp = 1)");
  }
  // A decode step of a recordable shape is padded to it, recorded once and replayed after (the
  // collectives of a tp / pp group are recorded too). A worker of a group pads even when told
  // not to record (--enforce_eager), so that every rank's collectives have the same sizes
  // whatever each rank was told.
  const bool record = options.step_graphs && options.routing == nullptr && be.CanCaptureSteps();
  std::optional<GraphShape> shape;
  if (record || (be.CanCaptureSteps() && impl_->Grouped())) {
    shape = GraphShapeFor(b, kMaxGraphTokens);
  }
  if (shape) PadToGraphShape(b, *shape);
  MLA_ASSIGN_OR_RETURN(const StepIndex index,
                       be.BeginStep(b, StepOptions{.attention = c.MlaDimsForHeads(w.local_heads),
                                                   .graph_shape = shape.has_value()}));
  const LayerStep step{
      .backend = be, .config = c, .batch = b, .index = index, .routing = options.routing};
  MLA_ASSIGN_OR_RETURN(float* logits, shape && record ? impl_->RunGraphed(step, cache, *shape)
                                                      : impl_->Body(step, cache));
  if (!w.last_stage()) return StepOutput{};

  const int64_t S = static_cast<int64_t>(b.sample_seqs.size()), V = c.vocab_size;
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
