#include "coordinator/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mla::coordinator {
namespace {

// Prometheus' number format: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  for (int precision : {15, 16}) {  // the shortest form that reads back as v
    std::string text = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(text.c_str(), nullptr) == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

std::string Braced(const std::string& labels) {
  return labels.empty() ? std::string() : absl::StrCat("{", labels, "}");
}

std::string WithLabel(const std::string& labels, const std::string& extra) {
  return labels.empty() ? absl::StrCat("{", extra, "}") : absl::StrCat("{", labels, ",", extra, "}");
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::Observe(double value) {
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();  // le semantics
  absl::MutexLock lock(&mu_);
  ++counts_[bucket];
  sum_ += value;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  absl::MutexLock lock(&mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_;
  return s;
}

MetricsRegistry::Family& MetricsRegistry::FamilyLocked(std::string_view name,
                                                       std::string_view help, Type type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}, {}, {}, {}})
             .first;
  }
  assert(it->second.type == type);
  return it->second;
}

Counter* MetricsRegistry::GetCounter(std::string_view name, std::string_view help,
                                     std::string_view labels) {
  absl::MutexLock lock(&mu_);
  auto& series = FamilyLocked(name, help, Type::kCounter).counters[std::string(labels)];
  if (series == nullptr) series = std::make_unique<Counter>();
  return series.get();
}

Gauge* MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 std::string_view labels) {
  absl::MutexLock lock(&mu_);
  auto& series = FamilyLocked(name, help, Type::kGauge).gauges[std::string(labels)];
  if (series == nullptr) series = std::make_unique<Gauge>();
  return series.get();
}

Histogram* MetricsRegistry::GetHistogram(std::string_view name, std::string_view help,
                                         const std::vector<double>& bounds,
                                         std::string_view labels) {
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, Type::kHistogram);
  if (family.histograms.empty()) family.bounds = bounds;
  assert(family.bounds == bounds);
  auto& series = family.histograms[std::string(labels)];
  if (series == nullptr) series = std::make_unique<Histogram>(bounds);
  return series.get();
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, family] : families_) {
    const char* type = family.type == Type::kCounter ? "counter"
                       : family.type == Type::kGauge ? "gauge"
                                                     : "histogram";
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(family.help), "\n# TYPE ", name, " ",
                    type, "\n");
    for (const auto& [labels, c] : family.counters) {
      absl::StrAppend(&out, name, Braced(labels), " ", Number(c->value()), "\n");
    }
    for (const auto& [labels, g] : family.gauges) {
      absl::StrAppend(&out, name, Braced(labels), " ", Number(g->value()), "\n");
    }
    for (const auto& [labels, h] : family.histograms) {
      const Histogram::Snapshot s = h->Read();
      for (size_t i = 0; i < s.bounds.size(); ++i) {
        absl::StrAppend(&out, name, "_bucket",
                        WithLabel(labels, absl::StrCat("le=\"", Number(s.bounds[i]), "\"")), " ",
                        s.cumulative[i], "\n");
      }
      absl::StrAppend(&out, name, "_bucket", WithLabel(labels, "le=\"+Inf\""), " ", s.count, "\n");
      absl::StrAppend(&out, name, "_sum", Braced(labels), " ", Number(s.sum), "\n");
      absl::StrAppend(&out, name, "_count", Braced(labels), " ", s.count, "\n");
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace mla::coordinator
