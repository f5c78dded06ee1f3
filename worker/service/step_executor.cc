#include "worker/service/step_executor.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla::worker_service {

StepExecutor::StepExecutor(Model* model, LatentCachePool* cache, bool returns_tokens,
                           bool step_graphs)
    : model_(model), cache_(cache), returns_tokens_(returns_tokens), step_graphs_(step_graphs) {}

std::vector<int32_t> StepExecutor::table(int64_t seq_id) const {
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? std::vector<int32_t>{} : it->second;
}

absl::StatusOr<StepBatch> StepExecutor::ToBatch(const v1::Step& step) {
  for (int64_t id : step.freed_seq_ids()) tables_.erase(id);
  StepBatch batch;
  batch.seqs.reserve(step.seqs_size());
  for (const v1::SequenceStep& s : step.seqs()) {
    std::vector<int32_t>& table = tables_[s.seq_id()];
    if (s.block_table_offset() > table.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step ", step.step_id(), " sequence ", s.seq_id(), ": block_table_offset ",
          s.block_table_offset(), " but only ", table.size(), " entries are kept"));
    }
    table.resize(s.block_table_offset());
    table.insert(table.end(), s.block_table().begin(), s.block_table().end());
    SequenceStep out;
    out.seq_id = s.seq_id();
    out.tokens.assign(s.tokens().begin(), s.tokens().end());
    out.start_pos = s.start_pos();
    out.block_table = table;
    out.sample = s.sample();
    out.sampling = {.temperature = s.sampling().temperature(),
                    .top_k = s.sampling().top_k(),
                    .top_p = s.sampling().top_p(),
                    .seed = s.sampling().seed()};
    out.sample_index = s.sample_index();
    batch.seqs.push_back(std::move(out));
  }
  return batch;
}

v1::StepResult StepExecutor::Run(const v1::Step& step) {
  const auto start = std::chrono::steady_clock::now();
  v1::StepResult result;
  result.set_step_id(step.step_id());
  result.set_micro_batch(step.micro_batch());
  absl::StatusOr<StepBatch> batch = ToBatch(step);
  absl::StatusOr<StepOutput> out =
      batch.ok() ? model_->Forward(*batch, *cache_, {.return_logits = step.return_logits(), .step_graphs = step_graphs_})
                 : absl::StatusOr<StepOutput>(batch.status());
  if (model_->num_step_graphs() > graphs_reported_) {
    graphs_reported_ = model_->num_step_graphs();
    absl::FPrintF(stderr, "mla-worker: step graphs recorded: %d\n", graphs_reported_);
  }
  if (!out.ok()) {
    result.set_error(out.status().ToString());
    // The communicators report a dead or hung peer as Unavailable or DeadlineExceeded.
    result.set_peer_failed(absl::IsUnavailable(out.status()) ||
                           absl::IsDeadlineExceeded(out.status()));
  } else if (returns_tokens_) {
    result.mutable_seq_ids()->Assign(out->seq_ids.begin(), out->seq_ids.end());
    result.mutable_tokens()->Assign(out->tokens.begin(), out->tokens.end());
    result.mutable_logits()->Assign(out->logits.begin(), out->logits.end());
  }
  result.set_elapsed_ms(std::chrono::duration<float, std::milli>(
                            std::chrono::steady_clock::now() - start).count());
  return result;
}

}  // namespace mla::worker_service
