#include "coordinator/scheduler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mla::coordinator {

bool Scheduler::Rank::operator()(const Sequence* a, const Sequence* b) const {
  if (a->priority() != b->priority()) return a->priority() > b->priority();
  return a->arrival() < b->arrival();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options,
                                                              int64_t num_cache_blocks) {
  if (options.max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_num_batched_tokens is ", options.max_num_batched_tokens, "; must be >= 1"));
  }
  if (options.max_num_seqs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_seqs is ", options.max_num_seqs, "; must be >= 1"));
  }
  if (options.max_waiting < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_waiting is ", options.max_waiting, "; must be >= 1"));
  }
  if (options.max_model_len < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_model_len is ", options.max_model_len, "; must be >= 0"));
  }
  if (num_cache_blocks < 1 || num_cache_blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_cache_blocks is ", num_cache_blocks, "; must be in [1, 2^31)"));
  }
  return std::unique_ptr<Scheduler>(new Scheduler(options, num_cache_blocks));
}

Scheduler::Scheduler(const SchedulerOptions& options, int64_t num_cache_blocks)
    : options_(options), blocks_(num_cache_blocks) {}

absl::StatusOr<int64_t> Scheduler::Add(std::vector<int32_t> prompt, GenerationParams params) {
  if (prompt.empty()) return absl::InvalidArgumentError("prompt is empty; give >= 1 token");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", i, " is ", prompt[i], "; token ids are >= 0"));
    }
  }
  if (params.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens is ", params.max_tokens, "; must be >= 1"));
  }
  const SamplingParams& s = params.sampling;
  if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature is ", s.temperature, "; must be finite and >= 0"));
  }
  if (s.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k is ", s.top_k, "; must be >= 0"));
  }
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p is ", s.top_p, "; must be in (0, 1]"));
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + params.max_tokens;
  if (options_.max_model_len > 0 && total > options_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", prompt.size(), " tokens) + max_tokens (", params.max_tokens,
                     ") is ", total, "; the model's context is ", options_.max_model_len));
  }
  // The last sampled token is never fed back, so the cache needs total - 1 positions.
  const int64_t blocks = BlockManager::BlocksForTokens(total - 1);
  if (blocks > blocks_.num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt + max_tokens = ", total, " tokens need ", blocks,
                     " cache blocks; the whole cache has ", blocks_.num_blocks()));
  }
  if (num_waiting() >= options_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("waiting queue is full (", options_.max_waiting, " requests); retry later"));
  }
  const int64_t id = next_seq_id_++;
  auto seq = std::make_unique<Sequence>(id, next_arrival_++, std::move(prompt), std::move(params));
  waiting_.insert(seq.get());
  seqs_.emplace(id, std::move(seq));
  return id;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int64_t budget = options_.max_num_batched_tokens;
  bool preempted = false;
  ScheduleRunning(/*decodes=*/true, &budget, &plan, &preempted);
  ScheduleRunning(/*decodes=*/false, &budget, &plan, &preempted);

  // Admission, strictly in queue order; none after a preemption (the blocks just freed belong to
  // the running sequences that needed them).
  while (!preempted && !waiting_.empty() && budget > 0 && num_running() < options_.max_num_seqs) {
    Sequence* seq = *waiting_.begin();
    const int64_t n = std::min(seq->num_uncomputed_tokens(), budget);
    if (!blocks_.CanAllocate(*seq, n)) break;
    waiting_.erase(waiting_.begin());
    blocks_.Allocate(seq, n);
    seq->set_status(SequenceStatus::kRunning);
    running_.insert(seq);
    AddToPlan(seq, n, &plan);
    budget -= n;
  }

  if (plan.seqs.empty()) return plan;  // nothing to send; freed ids wait for the next plan
  plan.step_id = next_step_id_++;
  plan.freed_seq_ids = std::move(freed_since_plan_);
  freed_since_plan_.clear();
  std::vector<Planned>& record = in_flight_[plan.step_id];
  for (const SequenceStep& step : plan.seqs) {
    record.push_back({step.seq_id, static_cast<int64_t>(step.tokens.size()), step.sample});
  }
  return plan;
}

void Scheduler::ScheduleRunning(bool decodes, int64_t* budget, StepPlan* plan, bool* preempted) {
  // A snapshot in rank order: preemption edits running_ while we walk.
  const std::vector<Sequence*> order(running_.begin(), running_.end());
  for (Sequence* seq : order) {
    if (*budget == 0) return;
    if (seq->status() != SequenceStatus::kRunning || seq->in_flight()) continue;
    if ((seq->num_uncomputed_tokens() == 1) != decodes) continue;
    // No room for even one token: free the worst-ranked sequence, which may be seq itself.
    while (blocks_.MaxNewTokens(*seq) == 0 && seq->status() == SequenceStatus::kRunning) {
      if (!PreemptOne()) break;  // every other candidate is in flight: wait for its Commit
      *preempted = true;
    }
    if (seq->status() != SequenceStatus::kRunning) continue;
    const int64_t n =
        std::min({seq->num_uncomputed_tokens(), *budget, blocks_.MaxNewTokens(*seq)});
    if (n == 0) continue;
    blocks_.Allocate(seq, n);
    AddToPlan(seq, n, plan);
    *budget -= n;
  }
}

bool Scheduler::PreemptOne() {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    Sequence* victim = *it;
    if (victim->in_flight()) continue;
    Release(victim);  // invalidates it
    victim->ResetComputed();
    victim->set_status(SequenceStatus::kWaiting);
    waiting_.insert(victim);
    ++num_preemptions_;
    return true;
  }
  return false;
}

void Scheduler::AddToPlan(Sequence* seq, int64_t num_tokens, StepPlan* plan) {
  const int64_t start = seq->num_computed_tokens();
  const int64_t end = start + num_tokens;
  const int64_t num_blocks = BlockManager::BlocksForTokens(end);
  assert(static_cast<int64_t>(seq->block_table().size()) >= num_blocks);
  SequenceStep step;
  step.seq_id = seq->id();
  step.tokens = seq->Tokens(start, end);
  step.start_pos = static_cast<int32_t>(start);
  // A table may run past `end` after an Abandon; the step carries exactly what it covers.
  step.block_table.assign(seq->block_table().begin(), seq->block_table().begin() + num_blocks);
  step.sample = end == seq->num_tokens();
  step.sampling = seq->params().sampling;
  step.sample_index = static_cast<uint64_t>(seq->num_output_tokens());
  seq->set_in_flight(true);
  plan->seqs.push_back(std::move(step));
}

void Scheduler::Release(Sequence* seq) {
  blocks_.Free(seq);
  running_.erase(seq);
  freed_since_plan_.push_back(seq->id());
}

absl::StatusOr<std::vector<SequenceUpdate>> Scheduler::Commit(const StepResult& result) {
  auto it = in_flight_.find(result.step_id);
  if (it == in_flight_.end()) {
    return absl::NotFoundError(absl::StrCat("step ", result.step_id, " is not in flight"));
  }
  const std::vector<Planned>& planned = it->second;
  // Check everything before changing anything.
  if (result.tokens.size() != result.seq_ids.size()) {
    return absl::InvalidArgumentError(absl::StrCat("step ", result.step_id, " result has ",
                                                   result.seq_ids.size(), " seq_ids but ",
                                                   result.tokens.size(), " tokens"));
  }
  size_t k = 0;
  for (const Planned& p : planned) {
    if (!p.sample) continue;
    if (k >= result.seq_ids.size() || result.seq_ids[k] != p.seq_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step ", result.step_id, " result entry ", k, " should be sequence ", p.seq_id, ", is ",
          k < result.seq_ids.size() ? absl::StrCat(result.seq_ids[k]) : "missing"));
    }
    if (result.tokens[k] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("step ", result.step_id, " token ", k,
                                                     " is ", result.tokens[k], "; must be >= 0"));
    }
    ++k;
  }
  if (k != result.seq_ids.size()) {
    return absl::InvalidArgumentError(absl::StrCat("step ", result.step_id, " result has ",
                                                   result.seq_ids.size(), " entries; the plan "
                                                   "sampled ", k));
  }

  std::vector<SequenceUpdate> updates;
  k = 0;
  for (const Planned& p : planned) {
    const int32_t token = p.sample ? result.tokens[k++] : 0;
    auto found = seqs_.find(p.seq_id);
    if (found == seqs_.end()) continue;  // cancelled while in flight
    Sequence* seq = found->second.get();
    seq->set_in_flight(false);
    FinishReason reason = FinishReason::kNone;
    if (p.sample) reason = seq->AppendToken(token, options_.eos_token_id);
    seq->AdvanceComputed(p.num_tokens);
    if (!p.sample) continue;
    if (reason != FinishReason::kNone) {
      Release(seq);
      seq->Finish(reason);
    }
    SequenceUpdate update = seq->MakeUpdate();
    update.new_tokens.push_back(token);
    updates.push_back(std::move(update));
    if (reason != FinishReason::kNone) seqs_.erase(found);
  }
  in_flight_.erase(it);
  return updates;
}

absl::Status Scheduler::Abandon(uint64_t step_id) {
  auto it = in_flight_.find(step_id);
  if (it == in_flight_.end()) {
    return absl::NotFoundError(absl::StrCat("step ", step_id, " is not in flight"));
  }
  for (const Planned& p : it->second) {
    auto found = seqs_.find(p.seq_id);
    if (found != seqs_.end()) found->second->set_in_flight(false);
  }
  in_flight_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<SequenceUpdate> Scheduler::Cancel(int64_t seq_id) {
  auto found = seqs_.find(seq_id);
  if (found == seqs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("sequence ", seq_id, " is not live (unknown, finished or cancelled)"));
  }
  Sequence* seq = found->second.get();
  if (seq->status() == SequenceStatus::kWaiting) {
    waiting_.erase(seq);
  } else {
    Release(seq);
  }
  seq->Finish(FinishReason::kCancelled);
  SequenceUpdate update = seq->MakeUpdate();
  seqs_.erase(found);
  return update;
}

const Sequence* Scheduler::Find(int64_t seq_id) const {
  auto found = seqs_.find(seq_id);
  return found == seqs_.end() ? nullptr : found->second.get();
}

absl::Status Scheduler::CheckInvariants() const {
  if (absl::Status s = blocks_.Validate(); !s.ok()) return s;
  auto fail = [](auto&&... parts) { return absl::InternalError(absl::StrCat(parts...)); };
  if (num_waiting() + num_running() != static_cast<int64_t>(seqs_.size())) {
    return fail(num_waiting(), " waiting + ", num_running(), " running != ", seqs_.size(),
                " live sequences");
  }
  if (num_running() > options_.max_num_seqs) {
    return fail(num_running(), " running > max_num_seqs ", options_.max_num_seqs);
  }
  std::vector<int64_t> holder(blocks_.num_blocks(), BlockManager::kNoOwner);
  int64_t table_blocks = 0;
  int64_t num_in_flight = 0;
  for (const auto& [id, seq] : seqs_) {
    const bool waiting = seq->status() == SequenceStatus::kWaiting;
    const std::set<Sequence*, Rank>& queue = waiting ? waiting_ : running_;
    if (seq->status() == SequenceStatus::kFinished || !queue.contains(seq.get())) {
      return fail("sequence ", id, " is live but not in the queue of its status");
    }
    if (seq->num_computed_tokens() >= seq->num_tokens()) {
      return fail("sequence ", id, " has no uncomputed token");
    }
    const int64_t table = static_cast<int64_t>(seq->block_table().size());
    if (table < BlockManager::BlocksForTokens(seq->num_computed_tokens()) ||
        table > BlockManager::BlocksForTokens(seq->num_tokens())) {
      return fail("sequence ", id, " holds ", table, " blocks for ", seq->num_computed_tokens(),
                  " computed of ", seq->num_tokens(), " tokens");
    }
    if (waiting && (table != 0 || seq->num_computed_tokens() != 0 || seq->in_flight())) {
      return fail("waiting sequence ", id, " holds cache state");
    }
    for (int32_t block : seq->block_table()) {
      if (block < 0 || block >= blocks_.num_blocks() || blocks_.owner(block) != id) {
        return fail("sequence ", id, " lists block ", block, " which it does not own");
      }
      if (holder[block] != BlockManager::kNoOwner) {
        return fail("block ", block, " is in the tables of ", holder[block], " and ", id);
      }
      holder[block] = id;
    }
    table_blocks += table;
    num_in_flight += seq->in_flight() ? 1 : 0;
  }
  if (table_blocks != blocks_.num_used_blocks()) {
    return fail(blocks_.num_used_blocks(), " blocks used but live tables hold ", table_blocks);
  }
  int64_t planned_live = 0;
  for (const auto& [step_id, planned] : in_flight_) {
    for (const Planned& p : planned) {
      const Sequence* seq = Find(p.seq_id);
      if (seq == nullptr) continue;
      if (!seq->in_flight() || seq->status() != SequenceStatus::kRunning) {
        return fail("sequence ", p.seq_id, " of in-flight step ", step_id, " is not in flight");
      }
      ++planned_live;
    }
  }
  if (planned_live != num_in_flight) {
    return fail(num_in_flight, " sequences in flight but in-flight steps hold ", planned_live);
  }
  return absl::OkStatus();
}

}  // namespace mla::coordinator
