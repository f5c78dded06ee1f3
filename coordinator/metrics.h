// MetricsRegistry: counters, gauges and histograms with fixed buckets, rendered in Prometheus'
// text exposition format (version 0.0.4) for a /metrics page.
//
// A family is a metric name with its help text and type; a series is one family's value for one
// label set, given as the text between the braces (`status="ok",kind="http"`, empty for none).
// Get* returns the series, creating it on first use; the pointer stays valid for the
// registry's lifetime. Asking for an existing name with another type or bucket list is a bug
// (asserted). Label values are escaped by the caller with EscapeLabelValue.
//
// Threads: every method may be called from any thread. Updates are lock-free for counters and
// gauges and take a per-histogram lock for histograms; Render takes the registry's lock and
// each histogram's.
#ifndef MLASERVE_COORDINATOR_METRICS_H_
#define MLASERVE_COORDINATOR_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mla::coordinator {

// A value that only goes up (Add with amount >= 0).
class Counter {
 public:
  void Add(double amount = 1) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that is set (queue length, blocks in use).
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into buckets with fixed upper bounds (ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // per bucket, +Inf last (not cumulative)
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
};

class MetricsRegistry {
 public:
  Counter* GetCounter(std::string_view name, std::string_view help, std::string_view labels = "");
  Gauge* GetGauge(std::string_view name, std::string_view help, std::string_view labels = "");
  Histogram* GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bounds, std::string_view labels = "");

  // Every family in name order, each series in label order.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> bounds;  // histograms
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyLocked(std::string_view name, std::string_view help, Type type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// `value` with backslash, double quote and newline escaped, for a label value.
std::string EscapeLabelValue(std::string_view value);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_METRICS_H_
