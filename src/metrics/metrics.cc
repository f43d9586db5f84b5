#include "metrics/metrics.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "prometheus/text_serializer.h"

namespace faasd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric::Label FunctionLabel(const std::string& name) { return {"function_name", name}; }

}  // namespace

Metrics::FunctionCounters::~FunctionCounters() {
  for (auto& p : by_code) delete p.load(std::memory_order_relaxed);
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

Metrics::FunctionCounters* Metrics::For(absl::string_view function_name) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = functions_.find(function_name);
    if (it != functions_.end()) return it->second.get();
  }
  absl::MutexLock lock(&mu_);
  auto& slot = functions_[function_name];
  if (!slot) slot = std::make_unique<FunctionCounters>();
  return slot.get();
}

void Metrics::Started(FunctionCounters* f) {
  f->started.fetch_add(1, std::memory_order_relaxed);
  f->inflight.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::Finished(FunctionCounters* f, int code, uint64_t duration_ns) {
  if (code < 0 || code >= kMaxCode) code = 0;
  CodeStats* stats = f->by_code[code].load(std::memory_order_acquire);
  if (stats == nullptr) {
    auto* fresh = new CodeStats();
    if (f->by_code[code].compare_exchange_strong(stats, fresh, std::memory_order_acq_rel)) {
      stats = fresh;
    } else {
      delete fresh;  // another thread won; `stats` now holds its pointer
    }
  }
  stats->count.fetch_add(1, std::memory_order_relaxed);
  stats->sum_ns.fetch_add(duration_ns, std::memory_order_relaxed);
  const double seconds = static_cast<double>(duration_ns) / 1e9;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      stats->buckets[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  // Last: once inflight reads 0, Prune may free retired counters (release: nothing above is
  // reordered after it).
  f->inflight.fetch_sub(1, std::memory_order_release);
}

void Metrics::Prune(const std::function<bool(const std::string&)>& keep) {
  absl::MutexLock lock(&mu_);
  // Those retired by an earlier call: freed once nothing holds them.
  retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                [](const std::unique_ptr<FunctionCounters>& f) {
                                  return f->inflight.load(std::memory_order_acquire) <= 0;
                                }),
                 retired_.end());
  for (auto it = functions_.begin(); it != functions_.end();) {
    if (keep(it->first)) {
      ++it;
      continue;
    }
    retired_.push_back(std::move(it->second));
    functions_.erase(it++);
  }
}

uint64_t Metrics::InvocationCount(absl::string_view function_name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = functions_.find(function_name);
  if (it == functions_.end()) return 0;
  uint64_t total = 0;
  for (const auto& p : it->second->by_code) {
    const CodeStats* s = p.load(std::memory_order_acquire);
    if (s != nullptr) total += s->count.load(std::memory_order_relaxed);
  }
  return total;
}

int64_t Metrics::Inflight(absl::string_view function_name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = functions_.find(function_name);
  return it == functions_.end() ? 0 : it->second->inflight.load(std::memory_order_relaxed);
}

void Metrics::ForEachFunction(
    const std::function<void(const std::string&, const FunctionCounters&)>& visit) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [name, counters] : functions_) visit(name, *counters);
}

int Metrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.emplace_back(++next_collector_, std::move(collector));
  return next_collector_;
}

void Metrics::RemoveCollector(int id) {
  absl::MutexLock lock(&mu_);
  collectors_.erase(std::remove_if(collectors_.begin(), collectors_.end(),
                                   [id](const auto& c) { return c.first == id; }),
                    collectors_.end());
}

std::vector<MetricFamily> Metrics::CollectInvocations() const {
  std::vector<std::pair<std::string, const FunctionCounters*>> fns;
  {
    absl::ReaderMutexLock lock(&mu_);
    fns.reserve(functions_.size());
    for (const auto& [name, counters] : functions_) fns.emplace_back(name, counters.get());
  }
  std::sort(fns.begin(), fns.end());

  MetricFamily total{"gateway_function_invocation_total", "Function metrics", MetricType::Counter};
  MetricFamily seconds{"gateway_functions_seconds", "Function time taken", MetricType::Histogram};
  MetricFamily started{"gateway_function_invocation_started", "Function invocation started",
                       MetricType::Counter};
  MetricFamily inflight{"gateway_function_invocation_inflight",
                        "Function invocations started and not yet answered", MetricType::Gauge};
  for (const auto& [name, f] : fns) {
    ClientMetric s;
    s.label = {FunctionLabel(name)};
    s.counter.value = static_cast<double>(f->started.load(std::memory_order_relaxed));
    started.metric.push_back(s);
    ClientMetric in;
    in.label = {FunctionLabel(name)};
    in.gauge.value = static_cast<double>(f->inflight.load(std::memory_order_relaxed));
    inflight.metric.push_back(std::move(in));
    for (int code = 0; code < kMaxCode; ++code) {
      const CodeStats* stats = f->by_code[code].load(std::memory_order_acquire);
      if (stats == nullptr) continue;
      const std::vector<ClientMetric::Label> labels = {FunctionLabel(name),
                                                       {"code", std::to_string(code)}};
      const uint64_t count = stats->count.load(std::memory_order_relaxed);
      ClientMetric t;
      t.label = labels;
      t.counter.value = static_cast<double>(count);
      total.metric.push_back(std::move(t));

      ClientMetric h;
      h.label = labels;
      uint64_t cumulative = 0;
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += stats->buckets[i].load(std::memory_order_relaxed);
        h.histogram.bucket.push_back({cumulative, kBuckets[i]});
      }
      // Counters are read one by one, so +Inf is at least the last finite bucket.
      const uint64_t all = std::max(count, cumulative);
      h.histogram.bucket.push_back({all, std::numeric_limits<double>::infinity()});
      h.histogram.sample_count = all;
      h.histogram.sample_sum =
          static_cast<double>(stats->sum_ns.load(std::memory_order_relaxed)) / 1e9;
      seconds.metric.push_back(std::move(h));
    }
  }
  std::vector<MetricFamily> out;
  out.push_back(std::move(total));
  out.push_back(std::move(seconds));
  out.push_back(std::move(started));
  out.push_back(std::move(inflight));
  return out;
}

std::string Metrics::Render() const {
  std::vector<MetricFamily> families = CollectInvocations();
  {
    // Held while collecting, so RemoveCollector returns only once no collector runs.
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [id, collect] : collectors_) {
      for (MetricFamily& f : collect()) families.push_back(std::move(f));
    }
  }
  for (MetricFamily& f : registry_->Collect()) families.push_back(std::move(f));
  for (MetricFamily& f : CollectProcessMetrics()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

prometheus::MetricFamily SingleValueFamily(std::string name, std::string help,
                                           prometheus::MetricType type, double value) {
  MetricFamily f{std::move(name), std::move(help), type};
  ClientMetric m;
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help, const std::string& label,
                                     const std::vector<std::pair<std::string, double>>& values) {
  MetricFamily family{std::move(name), std::move(help), MetricType::Gauge};
  for (const auto& [value_label, value] : values) {
    ClientMetric m;
    m.label = {{label, value_label}};
    m.gauge.value = value;
    family.metric.push_back(std::move(m));
  }
  return family;
}

}  // namespace faasd::metrics
