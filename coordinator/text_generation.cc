#include "coordinator/text_generation.h"

#include <algorithm>
#include <utility>

namespace mla::coordinator {
namespace {

DecodeOptions SkipSpecial() {
  DecodeOptions options;
  options.skip_special = true;
  return options;
}

}  // namespace

TextGeneration::TextGeneration(Engine* engine, const Tokenizer* tokenizer,
                               std::vector<std::string> stop, ServingMetrics* metrics,
                               std::string request_id)
    : engine_(engine), stop_(std::move(stop)), decoder_(tokenizer, SkipSpecial()),
      trace_(metrics, "http", std::move(request_id)) {
  for (const std::string& s : stop_) hold_ = std::max(hold_, s.empty() ? 0 : s.size() - 1);
}

TextGeneration::~TextGeneration() {
  if (!started_) return;
  bool delivered;
  {
    absl::MutexLock lock(&mu_);
    delivered = final_delivered_;
  }
  if (!delivered) engine_->Cancel(ticket_);  // no-op if it ends meanwhile
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&final_delivered_));
}

absl::Status TextGeneration::Start(ValidatedRequest request) {
  absl::Status status = engine_->Submit(std::move(request), this, &ticket_);
  if (!status.ok()) {
    trace_.Finish(status, "", 0, 0);
    return status;
  }
  started_ = true;
  return absl::OkStatus();
}

bool TextGeneration::Next(TextEvent* event, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  if (event->final) final_taken_ = true;
  return true;
}

void TextGeneration::Cancel() {
  if (started_) engine_->Cancel(ticket_);
}

void TextGeneration::AddText(const std::string& piece, bool flush, std::string* out) {
  if (stopped_) return;
  pending_ += piece;
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) {
    if (s.empty()) continue;
    cut = std::min(cut, pending_.find(s));
  }
  if (cut != std::string::npos) {
    *out += pending_.substr(0, cut);
    pending_.clear();
    stopped_ = true;
    return;
  }
  size_t release = flush ? pending_.size() : pending_.size() - std::min(hold_, pending_.size());
  // Keep a character whole: never end the released part inside a UTF-8 sequence.
  while (release > 0 && release < pending_.size() &&
         (static_cast<unsigned char>(pending_[release]) & 0xC0) == 0x80) {
    --release;
  }
  *out += pending_.substr(0, release);
  pending_.erase(0, release);
}

void TextGeneration::OnUpdate(const SequenceUpdate& update) {
  const bool final = update.finish_reason != FinishReason::kNone;
  TextEvent event;
  const bool was_stopped = stopped_;
  if (!stopped_) {
    trace_.OnTokens(static_cast<int64_t>(update.new_tokens.size()));
    for (int32_t id : update.new_tokens) {
      if (stopped_) break;
      ++completion_tokens_;
      absl::StatusOr<std::string> piece = decoder_.Push(id);
      if (piece.ok()) AddText(*piece, /*flush=*/false, &event.text);
    }
    if (final) AddText(decoder_.Finish(), /*flush=*/true, &event.text);
    if (stopped_ && !was_stopped && !final) engine_->Cancel(ticket_);
  }
  if (final) {
    event.final = true;
    // OpenAI's reasons: "stop" also for a cancellation (the client is gone, or the server
    // drains); the log and the metrics say "cancelled".
    event.finish_reason =
        stopped_ || update.finish_reason != FinishReason::kLength ? "stop" : "length";
    event.prompt_tokens = update.num_prompt_tokens;
    event.completion_tokens = completion_tokens_;
    const bool cancelled = !stopped_ && update.finish_reason == FinishReason::kCancelled;
    trace_.Finish(absl::OkStatus(), cancelled ? "cancelled" : event.finish_reason,
                  event.prompt_tokens, event.completion_tokens);
  }
  if (event.text.empty() && !event.final) return;
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  if (final) final_delivered_ = true;
}

void TextGeneration::OnError(const absl::Status& status) {
  trace_.Finish(status, "", 0, completion_tokens_);
  TextEvent event;
  event.final = true;
  event.status = status;
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  final_delivered_ = true;
}

}  // namespace mla::coordinator
