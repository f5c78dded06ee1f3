#include "coordinator/sequence.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace mla::coordinator {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStopEos:
      return "stop_eos";
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

Sequence::Sequence(int64_t id, uint64_t arrival, std::vector<int32_t> prompt,
                   GenerationParams params)
    : id_(id), arrival_(arrival), prompt_(std::move(prompt)), params_(std::move(params)) {
  assert(!prompt_.empty());
}

std::vector<int32_t> Sequence::Tokens(int64_t begin, int64_t end) const {
  assert(0 <= begin && begin <= end && end <= num_tokens());
  std::vector<int32_t> tokens;
  tokens.reserve(end - begin);
  for (int64_t i = begin; i < end; ++i) {
    tokens.push_back(i < num_prompt_tokens() ? prompt_[i] : output_[i - num_prompt_tokens()]);
  }
  return tokens;
}

void Sequence::AdvanceComputed(int64_t n) {
  assert(n >= 0 && num_computed_ + n < num_tokens());
  num_computed_ += n;
}

void Sequence::ResetComputed() {
  assert(block_table_.empty());
  num_computed_ = 0;
}

FinishReason Sequence::AppendToken(int32_t token, int32_t eos_token_id) {
  assert(status_ != SequenceStatus::kFinished);
  output_.push_back(token);
  if (!params_.ignore_eos && eos_token_id >= 0 && token == eos_token_id) {
    return FinishReason::kStopEos;
  }
  const std::vector<int32_t>& stops = params_.stop_token_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    return FinishReason::kStopToken;
  }
  if (num_output_tokens() >= params_.max_tokens) return FinishReason::kLength;
  return FinishReason::kNone;
}

void Sequence::Finish(FinishReason reason) {
  assert(reason != FinishReason::kNone && block_table_.empty());
  status_ = SequenceStatus::kFinished;
  finish_reason_ = reason;
  in_flight_ = false;
}

SequenceUpdate Sequence::MakeUpdate() const {
  SequenceUpdate update;
  update.seq_id = id_;
  update.finish_reason = finish_reason_;
  update.num_prompt_tokens = num_prompt_tokens();
  update.num_output_tokens = num_output_tokens();
  return update;
}

}  // namespace mla::coordinator
