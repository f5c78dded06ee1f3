#include "coordinator/request_trace.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla::coordinator {
namespace {

// Seconds; from 1 ms to 60 s.
const std::vector<double>& LatencyBounds() {
  static const std::vector<double> bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
  return bounds;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace

ServingMetrics::ServingMetrics()
    : ttft_(registry_.GetHistogram("mla_time_to_first_token_seconds",
                                   "Seconds from a request's arrival to its first token.",
                                   LatencyBounds())),
      inter_token_(registry_.GetHistogram("mla_inter_token_latency_seconds",
                                          "Seconds between a request's successive tokens.",
                                          LatencyBounds())),
      duration_(registry_.GetHistogram("mla_request_duration_seconds",
                                       "Seconds from a request's arrival to its final status.",
                                       LatencyBounds())),
      prompt_tokens_(registry_.GetCounter("mla_prompt_tokens_total",
                                          "Prompt tokens of finished requests.")),
      generation_tokens_(registry_.GetCounter("mla_generation_tokens_total",
                                              "Tokens generated for finished requests.")) {
  Requests("http", "ok");  // present (at 0) before the first request
  Requests("grpc", "ok");
}

Counter* ServingMetrics::Requests(std::string_view api, std::string_view status) {
  return registry_.GetCounter(
      "mla_requests_total", "Requests by API and final status.",
      absl::StrCat("api=\"", EscapeLabelValue(api), "\",status=\"", EscapeLabelValue(status),
                   "\""));
}

Histogram* ServingMetrics::WorkerStepTime(int32_t rank) {
  return registry_.GetHistogram("mla_worker_step_seconds",
                                "Seconds each worker spent on a step, by rank.", LatencyBounds(),
                                absl::StrCat("rank=\"", rank, "\""));
}

std::string ServingMetrics::Render(const EngineStats& stats) {
  registry_.GetGauge("mla_serving", "1 when the worker group is ready and serving.")
      ->Set(stats.serving ? 1 : 0);
  registry_.GetGauge("mla_num_requests_waiting", "Sequences queued for admission.")
      ->Set(static_cast<double>(stats.num_waiting));
  registry_.GetGauge("mla_num_requests_running", "Sequences holding cache blocks.")
      ->Set(static_cast<double>(stats.num_running));
  registry_.GetGauge("mla_cache_blocks_free", "Latent cache blocks held by no sequence.")
      ->Set(static_cast<double>(stats.cache_blocks_free));
  registry_.GetGauge("mla_cache_blocks_used", "Latent cache blocks held by sequences.")
      ->Set(static_cast<double>(stats.cache_blocks_total - stats.cache_blocks_free));
  registry_.GetGauge("mla_engine_steps", "Steps committed since the coordinator started.")
      ->Set(static_cast<double>(stats.num_steps));
  registry_.GetGauge("mla_engine_step_loop_cpu_seconds",
                     "CPU seconds of the coordinator's step loop since start.")
      ->Set(stats.step_loop_cpu_seconds);
  registry_.GetGauge("mla_engine_preemptions", "Sequences preempted since start.")
      ->Set(static_cast<double>(stats.num_preemptions));
  return registry_.Render();
}

RequestTrace::RequestTrace(ServingMetrics* metrics, std::string api, std::string request_id)
    : metrics_(metrics), api_(std::move(api)), request_id_(std::move(request_id)),
      start_(absl::Now()) {}

void RequestTrace::OnTokens(int64_t n) {
  if (n <= 0 || finished_) return;
  const absl::Time now = absl::Now();
  if (first_token_ == absl::InfinitePast()) {
    first_token_ = now;
    if (metrics_ != nullptr) metrics_->ttft()->Observe(absl::ToDoubleSeconds(now - start_));
    --n;
  } else if (metrics_ != nullptr) {
    // Tokens that arrive together (a merged update) share the gap since the last ones.
    const double gap = absl::ToDoubleSeconds(now - last_token_) / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) metrics_->inter_token()->Observe(gap);
  }
  last_token_ = now;
}

void RequestTrace::Finish(const absl::Status& status, std::string_view finish_reason,
                          int64_t prompt_tokens, int64_t completion_tokens) {
  if (finished_) return;
  finished_ = true;
  const absl::Duration total = absl::Now() - start_;
  const std::string label = StatusLabel(status);
  if (metrics_ != nullptr) {
    metrics_->Requests(api_, label)->Add();
    metrics_->duration()->Observe(absl::ToDoubleSeconds(total));
    metrics_->prompt_tokens()->Add(static_cast<double>(prompt_tokens));
    metrics_->generation_tokens()->Add(static_cast<double>(completion_tokens));
  }
  const std::string ttft = first_token_ == absl::InfinitePast()
                               ? "-"
                               : absl::StrFormat("%.1f", Ms(first_token_ - start_));
  std::string line = absl::StrFormat(
      "mla-coordinator: request request_id=%s api=%s status=%s finish_reason=%s "
      "prompt_tokens=%d completion_tokens=%d ttft_ms=%s total_ms=%.1f",
      request_id_, api_, label, finish_reason.empty() ? "-" : std::string(finish_reason),
      prompt_tokens,
      completion_tokens, ttft, Ms(total));
  if (!status.ok()) {
    std::string message(status.message().substr(0, 200));
    for (char& c : message) {
      if (c == '"' || c == '\n') c = '\'';
    }
    absl::StrAppend(&line, " error=\"", message, "\"");
  }
  absl::FPrintF(stderr, "%s\n", line);
}

std::string StatusLabel(const absl::Status& status) {
  if (status.ok()) return "ok";
  std::string name = absl::StatusCodeToString(status.code());  // e.g. INVALID_ARGUMENT
  return absl::AsciiStrToLower(name);
}

}  // namespace mla::coordinator
