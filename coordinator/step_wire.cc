#include "coordinator/step_wire.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace mla::coordinator {

v1::Step StepEncoder::Encode(const StepPlan& plan, uint64_t wire_step_id) {
  v1::Step step;
  step.set_step_id(wire_step_id);
  for (int64_t id : plan.freed_seq_ids) {
    step.add_freed_seq_ids(seq_id_base_ + id);
    sent_.erase(id);
  }
  for (const SequenceStep& s : plan.seqs) {
    v1::SequenceStep* out = step.add_seqs();
    out->set_seq_id(seq_id_base_ + s.seq_id);
    out->mutable_tokens()->Assign(s.tokens.begin(), s.tokens.end());
    out->set_start_pos(s.start_pos);
    int64_t& sent = sent_[s.seq_id];
    const int64_t size = static_cast<int64_t>(s.block_table.size());
    const int64_t offset = std::min(sent, size);
    out->set_block_table_offset(static_cast<uint32_t>(offset));
    out->mutable_block_table()->Assign(s.block_table.begin() + offset, s.block_table.end());
    sent = size;
    out->set_sample(s.sample);
    v1::StepSampling* sampling = out->mutable_sampling();
    sampling->set_temperature(s.sampling.temperature);
    sampling->set_top_k(s.sampling.top_k);
    sampling->set_top_p(s.sampling.top_p);
    sampling->set_seed(s.sampling.seed);
    out->set_sample_index(s.sample_index);
  }
  return step;
}

absl::StatusOr<StepResult> StepEncoder::Decode(const v1::StepResult& result,
                                               const StepPlan& plan) const {
  if (result.has_error()) {
    return absl::InternalError(absl::StrCat("step ", result.step_id(), ": ", result.error()));
  }
  StepResult out;
  out.step_id = plan.step_id;
  out.tokens.assign(result.tokens().begin(), result.tokens().end());
  for (int64_t id : result.seq_ids()) {
    if (id < seq_id_base_) {
      return absl::InvalidArgumentError(absl::StrCat("step ", result.step_id(), " answers seq ",
                                                     id, ", not one of this group's"));
    }
    out.seq_ids.push_back(id - seq_id_base_);
  }
  return out;
}

}  // namespace mla::coordinator
