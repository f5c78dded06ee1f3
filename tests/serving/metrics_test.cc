#include "coordinator/metrics.h"

#include <string>

#include "gtest/gtest.h"

namespace mla::coordinator {
namespace {

TEST(Metrics, RendersCountersGaugesAndHistogramsInTextFormat) {
  MetricsRegistry registry;
  registry.GetCounter("mla_requests_total", "Requests.", "status=\"ok\"")->Add(3);
  registry.GetCounter("mla_requests_total", "Requests.", "status=\"invalid_argument\"")->Add();
  registry.GetGauge("mla_queue", "Queue.")->Set(2.5);
  Histogram* h = registry.GetHistogram("mla_latency_seconds", "Latency.", {0.5, 1});
  h->Observe(0.25);
  h->Observe(0.5);  // le: a bound's own value falls in its bucket
  h->Observe(5);
  EXPECT_EQ(registry.Render(),
            "# HELP mla_latency_seconds Latency.\n"
            "# TYPE mla_latency_seconds histogram\n"
            "mla_latency_seconds_bucket{le=\"0.5\"} 2\n"
            "mla_latency_seconds_bucket{le=\"1\"} 2\n"
            "mla_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "mla_latency_seconds_sum 5.75\n"
            "mla_latency_seconds_count 3\n"
            "# HELP mla_queue Queue.\n"
            "# TYPE mla_queue gauge\n"
            "mla_queue 2.5\n"
            "# HELP mla_requests_total Requests.\n"
            "# TYPE mla_requests_total counter\n"
            "mla_requests_total{status=\"invalid_argument\"} 1\n"
            "mla_requests_total{status=\"ok\"} 3\n");
}

TEST(Metrics, SameNameAndLabelsGiveTheSameSeries) {
  MetricsRegistry registry;
  Counter* a = registry.GetCounter("c_total", "C.", "x=\"1\"");
  EXPECT_EQ(a, registry.GetCounter("c_total", "C.", "x=\"1\""));
  EXPECT_NE(a, registry.GetCounter("c_total", "C.", "x=\"2\""));
}

TEST(Metrics, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace mla::coordinator
