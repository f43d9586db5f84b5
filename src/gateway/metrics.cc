#include "gateway/metrics.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace faasd::gateway {
namespace {

// Label values are function names already validated as DNS labels, but escape anyway: the
// exposition format breaks on a stray quote or newline.
std::string EscapeLabel(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatDouble(double v) { return absl::StrFormat("%.9g", v); }

}  // namespace

InvocationMetrics::FunctionCounters::~FunctionCounters() {
  for (auto& p : by_code) delete p.load(std::memory_order_relaxed);
}

InvocationMetrics::FunctionCounters* InvocationMetrics::For(absl::string_view function_name) {
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

void InvocationMetrics::Finished(FunctionCounters* f, int code, uint64_t duration_ns) {
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
}

uint64_t InvocationMetrics::InvocationCount(absl::string_view function_name) const {
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

std::string InvocationMetrics::Render(const provider::RoutingSnapshot& routes) const {
  std::vector<std::pair<std::string, const FunctionCounters*>> fns;
  {
    absl::ReaderMutexLock lock(&mu_);
    fns.reserve(functions_.size());
    for (const auto& [name, counters] : functions_) fns.emplace_back(name, counters.get());
  }
  std::sort(fns.begin(), fns.end());

  std::string total, seconds, started;
  for (const auto& [name, f] : fns) {
    const std::string label = EscapeLabel(name);
    absl::StrAppend(&started, "gateway_function_invocation_started{function_name=\"", label, "\"} ",
                    f->started.load(std::memory_order_relaxed), "\n");
    for (int code = 0; code < kMaxCode; ++code) {
      const CodeStats* s = f->by_code[code].load(std::memory_order_acquire);
      if (s == nullptr) continue;
      const std::string labels = absl::StrCat("function_name=\"", label, "\",code=\"", code, "\"");
      const uint64_t count = s->count.load(std::memory_order_relaxed);
      absl::StrAppend(&total, "gateway_function_invocation_total{", labels, "} ", count, "\n");
      uint64_t cumulative = 0;
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += s->buckets[i].load(std::memory_order_relaxed);
        absl::StrAppend(&seconds, "gateway_functions_seconds_bucket{", labels, ",le=\"",
                        FormatDouble(kBuckets[i]), "\"} ", cumulative, "\n");
      }
      // Counters are read one by one, so +Inf is at least the last finite bucket.
      absl::StrAppend(&seconds, "gateway_functions_seconds_bucket{", labels, ",le=\"+Inf\"} ",
                      std::max(count, cumulative), "\n");
      absl::StrAppend(&seconds, "gateway_functions_seconds_sum{", labels, "} ",
                      FormatDouble(static_cast<double>(s->sum_ns.load()) / 1e9), "\n");
      absl::StrAppend(&seconds, "gateway_functions_seconds_count{", labels, "} ",
                      std::max(count, cumulative), "\n");
    }
  }
  std::string service;
  for (const auto& [name, endpoints] : routes.functions) {
    absl::StrAppend(&service, "gateway_service_count{function_name=\"", EscapeLabel(name), "\"} ",
                    endpoints.size(), "\n");
  }

  std::string out;
  absl::StrAppend(&out,
                  "# HELP gateway_function_invocation_total Function metrics\n"
                  "# TYPE gateway_function_invocation_total counter\n",
                  total,
                  "# HELP gateway_functions_seconds Function time taken\n"
                  "# TYPE gateway_functions_seconds histogram\n",
                  seconds,
                  "# HELP gateway_function_invocation_started Function invocation started\n"
                  "# TYPE gateway_function_invocation_started counter\n",
                  started,
                  "# HELP gateway_service_count Current count of replicas for function\n"
                  "# TYPE gateway_service_count gauge\n",
                  service);
  return out;
}

}  // namespace faasd::gateway
