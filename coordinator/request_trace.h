// ServingMetrics: the coordinator's Prometheus metrics (one MetricsRegistry) and RequestTrace,
// which follows one client request from arrival to its final status, feeding the metrics and
// writing one structured log line at completion:
//
//   mla-coordinator: request request_id=req-7 api=http status=ok finish_reason=length
//     prompt_tokens=4 completion_tokens=16 ttft_ms=12.3 total_ms=80.1     (one line)
//
// Metrics (all prefixed mla_): requests_total{api,status}, prompt_tokens_total,
// generation_tokens_total, time_to_first_token_seconds, inter_token_latency_seconds,
// request_duration_seconds (histograms), and the engine's gauges (queue length, running
// sequences, cache blocks used / free, serving) and step counters, refreshed from
// EngineStats by Render; worker_step_seconds{rank} from each worker's StepResult.elapsed_ms.
//
// Threads: ServingMetrics is thread-safe. A RequestTrace is used by one thread at a time (the
// owner serialises its calls); Finish once (later calls are ignored).
#ifndef MLASERVE_COORDINATOR_REQUEST_TRACE_H_
#define MLASERVE_COORDINATOR_REQUEST_TRACE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordinator/engine.h"
#include "coordinator/metrics.h"

namespace mla::coordinator {

class ServingMetrics {
 public:
  ServingMetrics();

  // The exposition text, with the gauges refreshed from `stats`.
  std::string Render(const EngineStats& stats);

  MetricsRegistry& registry() { return registry_; }
  Histogram* ttft() { return ttft_; }
  Histogram* inter_token() { return inter_token_; }
  Histogram* duration() { return duration_; }
  Counter* prompt_tokens() { return prompt_tokens_; }
  Counter* generation_tokens() { return generation_tokens_; }
  Counter* Requests(std::string_view api, std::string_view status);
  Histogram* WorkerStepTime(int32_t rank);  // mla_worker_step_seconds{rank}

 private:
  MetricsRegistry registry_;
  Histogram* ttft_;
  Histogram* inter_token_;
  Histogram* duration_;
  Counter* prompt_tokens_;
  Counter* generation_tokens_;
};

class RequestTrace {
 public:
  // `metrics` may be null (no metrics; the log line is still written). `api`: "grpc" or "http".
  RequestTrace(ServingMetrics* metrics, std::string api, std::string request_id);

  const std::string& request_id() const { return request_id_; }
  // `n` new tokens arrived (TTFT on the first, inter-token latency after).
  void OnTokens(int64_t n);
  // The request ended: `status` OK (finish_reason says why) or the error it ended with.
  void Finish(const absl::Status& status, std::string_view finish_reason, int64_t prompt_tokens,
              int64_t completion_tokens);

 private:
  ServingMetrics* const metrics_;
  const std::string api_;
  const std::string request_id_;
  const absl::Time start_;
  absl::Time first_token_ = absl::InfinitePast();
  absl::Time last_token_ = absl::InfinitePast();
  bool finished_ = false;
};

// "ok", or the status code in snake case ("invalid_argument", "resource_exhausted", ...).
std::string StatusLabel(const absl::Status& status);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_REQUEST_TRACE_H_
