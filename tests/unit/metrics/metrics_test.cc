#include "metrics/history.h"
#include "metrics/metrics.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace faasd::metrics {
namespace {

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("invocations render as prometheus-cpp families with the gateway's names", "[metrics]") {
  Metrics m;
  Metrics::FunctionCounters* f = m.For("echo.openfaas-fn");
  CHECK(m.For("echo.openfaas-fn") == f);
  Metrics::Started(f);
  Metrics::Started(f);
  CHECK(m.Inflight("echo.openfaas-fn") == 2);
  Metrics::Finished(f, 200, 3'000'000);    // 3 ms: the 0.005 bucket
  Metrics::Finished(f, 500, 700'000'000);  // 0.7 s: the 1 s bucket
  CHECK(m.Inflight("echo.openfaas-fn") == 0);
  CHECK(m.InvocationCount("echo.openfaas-fn") == 2);
  CHECK(m.InvocationCount("other.openfaas-fn") == 0);

  const std::string b = m.Render();
  CHECK(Has(b, "# TYPE gateway_function_invocation_total counter\n"));
  CHECK(Has(b, "gateway_function_invocation_total{function_name=\"echo.openfaas-fn\",code=\"200\"} 1\n"));
  CHECK(Has(b, "gateway_function_invocation_total{function_name=\"echo.openfaas-fn\",code=\"500\"} 1\n"));
  CHECK(Has(b, "gateway_function_invocation_started{function_name=\"echo.openfaas-fn\"} 2\n"));
  CHECK(Has(b, "# TYPE gateway_function_invocation_inflight gauge\n"));
  CHECK(Has(b, "gateway_function_invocation_inflight{function_name=\"echo.openfaas-fn\"} 0\n"));
  CHECK(Has(b, "# TYPE gateway_functions_seconds histogram\n"));
  // Buckets are cumulative and their bounds print as written.
  CHECK(Has(b, "gateway_functions_seconds_bucket{function_name=\"echo.openfaas-fn\",code=\"500\",le=\"0.5\"} 0\n"));
  CHECK(Has(b, "gateway_functions_seconds_bucket{function_name=\"echo.openfaas-fn\",code=\"500\",le=\"1\"} 1\n"));
  CHECK(Has(b, "gateway_functions_seconds_bucket{function_name=\"echo.openfaas-fn\",code=\"200\",le=\"0.005\"} 1\n"));
  CHECK(Has(b, "gateway_functions_seconds_bucket{function_name=\"echo.openfaas-fn\",code=\"200\",le=\"+Inf\"} 1\n"));
  CHECK(Has(b, "gateway_functions_seconds_sum{function_name=\"echo.openfaas-fn\",code=\"500\"} 0.7\n"));
  CHECK(Has(b, "gateway_functions_seconds_count{function_name=\"echo.openfaas-fn\",code=\"200\"} 1\n"));
}

TEST_CASE("a label value with quotes, backslashes or newlines stays one sample", "[metrics]") {
  Metrics m;
  Metrics::FunctionCounters* f = m.For("a\"b\\c\nd");
  Metrics::Started(f);
  Metrics::Finished(f, 200, 1);
  CHECK(Has(m.Render(), "gateway_function_invocation_started{function_name=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST_CASE("codes outside 0..599 count as code 0", "[metrics]") {
  Metrics m;
  Metrics::FunctionCounters* f = m.For("x.y");
  Metrics::Started(f);
  Metrics::Finished(f, 1000, 1);
  Metrics::Started(f);
  Metrics::Finished(f, -1, 1);
  CHECK(Has(m.Render(), "gateway_function_invocation_total{function_name=\"x.y\",code=\"0\"} 2\n"));
}

TEST_CASE("registry families and collectors render beside the invocations", "[metrics]") {
  Metrics m;
  auto& published = prometheus::BuildCounter()
                        .Name("gateway_queue_published_total")
                        .Help("Async calls accepted")
                        .Register(m.registry());
  published.Add({}).Increment(5);
  const int id = m.AddCollector([] {
    return std::vector<prometheus::MetricFamily>{
        GaugeFamily("gateway_service_count", "replicas", "function_name", {{"f.ns", 3}})};
  });
  std::string b = m.Render();
  CHECK(Has(b, "gateway_queue_published_total 5\n"));
  CHECK(Has(b, "# TYPE gateway_service_count gauge\n"));
  CHECK(Has(b, "gateway_service_count{function_name=\"f.ns\"} 3\n"));
  m.RemoveCollector(id);
  CHECK(!Has(m.Render(), "gateway_service_count"));
}

TEST_CASE("process metrics describe this process", "[metrics]") {
  const std::string b = Metrics().Render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                           "process_virtual_memory_bytes ", "process_open_fds ", "process_max_fds ",
                           "process_start_time_seconds ", "process_threads "}) {
    CAPTURE(name);
    CHECK(Has(b, std::string("\n") + name));
  }
  CHECK(!Has(b, "process_resident_memory_bytes 0\n"));
  CHECK(!Has(b, "process_threads 0\n"));
}

TEST_CASE("counters stay exact under concurrent invocations", "[metrics]") {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 10000; ++i) {
        Metrics::FunctionCounters* f = m.For(i % 2 ? "a.ns" : "b.ns");
        Metrics::Started(f);
        Metrics::Finished(f, 200 + i % 3, 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(m.InvocationCount("a.ns") == 20000);
  CHECK(m.InvocationCount("b.ns") == 20000);
  CHECK(m.Inflight("a.ns") == 0);
}

}  // namespace
}  // namespace faasd::metrics

namespace faasd::metrics {
namespace {

TEST_CASE("quantiles interpolate inside the bucket they fall in", "[metrics][history]") {
  std::array<uint64_t, Metrics::kBuckets.size()> b{};
  CHECK(!QuantileMs(b, 0, 0.5).has_value());
  b[0] = 100;  // all within 5 ms
  CHECK(*QuantileMs(b, 0, 0.5) == Approx(2.5));
  CHECK(*QuantileMs(b, 0, 0.99) == Approx(4.95));
  b = {};
  b[1] = 50;  // 5..10 ms
  b[4] = 50;  // 50..100 ms
  CHECK(*QuantileMs(b, 0, 0.5) == Approx(10));
  CHECK(*QuantileMs(b, 0, 0.99) == Approx(99));
  b = {};
  CHECK(*QuantileMs(b, 10, 0.5) == Approx(10000));  // all beyond the last bound: that bound
}

TEST_CASE("history keeps one point per interval and function, at most 15 minutes",
          "[metrics][history]") {
  Metrics m;
  History h(m, [](const std::string&) { return true; });
  Metrics::FunctionCounters* f = m.For("f.ns");
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  CHECK(h.Points("f.ns").empty());
  h.Sample(t0);
  REQUIRE(h.Points("f.ns").size() == 1);
  CHECK(h.Points("f.ns")[0].requests == 0);
  for (int i = 0; i < 30; ++i) {
    Metrics::Started(f);
    Metrics::Finished(f, i < 3 ? 502 : 200, 20'000'000);  // 20 ms: the 10..25 ms bucket
  }
  h.Sample(t0 + absl::Seconds(10));
  std::vector<StatsPoint> p = h.Points("f.ns");
  REQUIRE(p.size() == 2);
  p.erase(p.begin());
  CHECK(p[0].t == 1'800'000'010);
  CHECK(p[0].requests == 30);
  CHECK(p[0].errors == 3);
  CHECK(p[0].rps == Approx(3));
  CHECK(*p[0].p50_ms > 10);
  CHECK(*p[0].p50_ms <= 25);
  h.Sample(t0 + absl::Seconds(20));  // nothing happened
  p = h.Points("f.ns");
  REQUIRE(p.size() == 3);
  CHECK(p[2].requests == 0);
  CHECK(!p[2].p99_ms.has_value());
  for (int i = 3; i < 200; ++i) h.Sample(t0 + absl::Seconds(10 * i));
  p = h.Points("f.ns");
  CHECK(p.size() == History::kPoints);
  CHECK(p.back().t == 1'800'000'000 + 10 * 199);
  CHECK(h.Points("other.ns").empty());
}

TEST_CASE("a function unknown at two samples in a row loses its counters and its points",
          "[metrics][history]") {
  Metrics m;
  std::set<std::string> deployed = {"kept.ns", "removed.ns"};
  History h(m, [&](const std::string& key) { return deployed.count(key) > 0; });
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  for (const char* name : {"kept.ns", "removed.ns", "made-up.ns"}) {
    Metrics::FunctionCounters* f = m.For(name);
    Metrics::Started(f);
    Metrics::Finished(f, 200, 1'000'000);
  }
  // An invocation of the removed function still in progress when it goes.
  Metrics::FunctionCounters* held = m.For("removed.ns");
  Metrics::Started(held);
  h.Sample(t0);  // made-up.ns unknown once: kept for now
  CHECK(m.InvocationCount("made-up.ns") == 1);
  deployed.erase("removed.ns");
  h.Sample(t0 + absl::Seconds(10));  // made-up.ns twice: gone; removed.ns once
  CHECK(m.InvocationCount("made-up.ns") == 0);
  CHECK(h.Points("made-up.ns").empty());
  CHECK(m.InvocationCount("removed.ns") == 1);
  h.Sample(t0 + absl::Seconds(20));  // removed.ns twice: retired, still held
  CHECK(m.InvocationCount("removed.ns") == 0);
  CHECK(h.Points("removed.ns").empty());
  Metrics::Finished(held, 200, 1'000'000);  // the retired counters are still there to count
  h.Sample(t0 + absl::Seconds(30));          // and are freed now (ASan would see a bad free)
  CHECK(m.InvocationCount("kept.ns") == 1);
  CHECK(h.Points("kept.ns").size() == 4);
  int functions = 0;
  m.ForEachFunction([&](const std::string&, const Metrics::FunctionCounters&) { ++functions; });
  CHECK(functions == 1);
  // A name seen again starts from zero.
  Metrics::FunctionCounters* again = m.For("removed.ns");
  Metrics::Started(again);
  Metrics::Finished(again, 200, 1'000'000);
  CHECK(m.InvocationCount("removed.ns") == 1);
}

}  // namespace
}  // namespace faasd::metrics
