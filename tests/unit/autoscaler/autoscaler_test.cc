// The autoscaler's loop over a fake provider, fake counters and a clock the test moves: which
// functions it manages, what it asks the provider for, Desired(), and the idle veto.
#include "autoscaler/autoscaler.h"

#include <mutex>

#include "catch.hpp"
#include "eventually.h"
#include "gateway/test_support.h"

using namespace faasd;
using namespace faasd::autoscaler;

namespace {

class TestClock final : public provider::Clock {
 public:
  absl::Time Now() const override { return now; }
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
};

class TestLoad final : public LoadSource {
 public:
  std::map<std::string, InvocationLoad> Loads() const override {
    std::lock_guard<std::mutex> l(mu);
    return loads;
  }
  mutable std::mutex mu;
  std::map<std::string, InvocationLoad> loads;
};

class TestVeto final : public IdleVeto {
 public:
  bool Busy(const std::string& key) const override { return key == busy; }
  std::string busy;
};

// Lists the replicas a test set (all ready), or what Scale last asked for.
class ScalingProvider final : public gateway::testing::FakeProvider {
 public:
  absl::StatusOr<std::vector<provider::FunctionStatus>> List(const std::string& ns) override {
    auto list = FakeProvider::List(ns);
    if (!list.ok()) return list;
    std::lock_guard<std::mutex> l(mu);
    for (auto& f : *list) {
      auto it = scaled.find(f.name + "." + ns);
      f.replicas = f.available_replicas = it == scaled.end() ? 1 : it->second;
    }
    return list;
  }
  void Add(const std::string& name, std::map<std::string, std::string> labels,
           uint64_t replicas = 1) {
    provider::FunctionDeployment d;
    d.service = name;
    d.image = "r/fn:1";
    d.labels = std::move(labels);
    REQUIRE(Deploy(d).ok());
    std::lock_guard<std::mutex> l(mu);
    scaled[name + ".openfaas-fn"] = replicas;
  }
  uint64_t Replicas(const std::string& key) {
    std::lock_guard<std::mutex> l(mu);
    return scaled.at(key);
  }
  absl::StatusOr<std::vector<std::string>> Namespaces() override {
    {
      std::lock_guard<std::mutex> l(mu);  // FakeProvider's, which its Namespaces() takes too
      ++namespace_calls;
      if (unavailable) return absl::UnavailableError("containerd: connection refused");
    }
    return FakeProvider::Namespaces();
  }
  int NamespaceCalls() {
    std::lock_guard<std::mutex> l(mu);
    return namespace_calls;
  }
  void SetUnavailable(bool u) {
    std::lock_guard<std::mutex> l(mu);
    unavailable = u;
  }
  int namespace_calls = 0;
  bool unavailable = false;
};

struct Rig {
  ScalingProvider provider;
  TestLoad load;
  TestClock clock;
  Autoscaler scaler{AutoscalerOptions{absl::Seconds(2), absl::Seconds(30), false}, provider, load,
                    clock};
  // `seconds` later, `rps` requests per second having started for `key`.
  void Tick(double seconds, const std::string& key = "", double rps = 0) {
    clock.now += absl::Seconds(seconds);
    if (!key.empty()) {
      std::lock_guard<std::mutex> l(load.mu);
      load.loads[key].started += static_cast<uint64_t>(seconds * rps);
    }
    scaler.Tick();
  }
};

// The loop on its own thread, every 10 ms.
struct LoopRig {
  ScalingProvider provider;
  TestLoad load;
  TestClock clock;
  Autoscaler scaler{AutoscalerOptions{absl::Milliseconds(10), absl::Seconds(30), false}, provider,
                    load, clock};
};

}  // namespace

TEST_CASE("Only labelled functions are autoscaled; the rest keep their replicas") {
  Rig rig;
  rig.provider.Add("auto", {{"com.openfaas.scale.target", "5"}, {"com.openfaas.scale.max", "4"}});
  rig.provider.Add("plain", {});
  rig.provider.Add("ranged", {{"com.openfaas.scale.min", "2"}, {"com.openfaas.scale.max", "3"}}, 3);
  rig.Tick(0);
  rig.Tick(2, "auto.openfaas-fn", 40);
  rig.Tick(2, "plain.openfaas-fn", 400);
  CHECK(rig.provider.Replicas("auto.openfaas-fn") == 4);
  CHECK(rig.provider.Replicas("plain.openfaas-fn") == 1);
  CHECK(rig.provider.Replicas("ranged.openfaas-fn") == 3);
  const auto desired = rig.scaler.Desired();
  CHECK(desired == std::map<std::string, uint64_t>{{"auto.openfaas-fn", 4}});
}

TEST_CASE("--autoscale-all manages every function") {
  ScalingProvider provider;
  TestLoad load;
  TestClock clock;
  Autoscaler scaler(AutoscalerOptions{absl::Seconds(2), absl::Seconds(30), true}, provider, load,
                    clock);
  provider.Add("plain", {}, 5);
  scaler.Tick();
  clock.now += absl::Seconds(2);
  scaler.Tick();
  CHECK(provider.Replicas("plain.openfaas-fn") == 1);  // idle: down to the minimum
  CHECK(scaler.Desired().at("plain.openfaas-fn") == 1);
}

TEST_CASE("Scale to zero waits for the idle veto, then the provider's Scale(0)") {
  Rig rig;
  rig.provider.Add(
      "sleepy", {{"com.openfaas.scale.zero", "true"}, {"com.openfaas.scale.zero-duration", "10s"}});
  TestVeto veto;
  veto.busy = "sleepy.openfaas-fn";
  rig.scaler.SetIdleVeto(&veto);
  rig.Tick(0);
  rig.Tick(30);
  CHECK(rig.provider.Replicas("sleepy.openfaas-fn") == 1);  // queued work: not idle
  veto.busy.clear();
  rig.Tick(8);
  CHECK(rig.provider.Replicas("sleepy.openfaas-fn") == 1);
  rig.Tick(2);
  CHECK(rig.provider.Replicas("sleepy.openfaas-fn") == 0);
  CHECK(rig.scaler.Desired().at("sleepy.openfaas-fn") == 0);
}

TEST_CASE("A removed function is forgotten; bad labels never stop the loop") {
  Rig rig;
  rig.provider.Add("odd", {{"com.openfaas.scale.type", "vibes"}, {"com.openfaas.scale.max", "2"}},
                   2);
  rig.Tick(0);
  rig.Tick(2);
  CHECK(rig.provider.Replicas("odd.openfaas-fn") == 1);  // rps (the default) and idle
  REQUIRE(rig.provider.Remove("odd", "openfaas-fn").ok());
  rig.Tick(2);
  CHECK(rig.scaler.Desired().empty());
}

TEST_CASE("The loop runs on its own thread and stops promptly") {
  LoopRig rig;
  ScalingProvider& provider = rig.provider;
  Autoscaler& scaler = rig.scaler;
  provider.Add("auto", {{"com.openfaas.scale.target", "1"}});
  scaler.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (scaler.Desired().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  CHECK(scaler.Desired().count("auto.openfaas-fn") == 1);
  const absl::Time t0 = absl::Now();
  scaler.Stop();
  CHECK(absl::Now() - t0 < absl::Seconds(1));
}

TEST_CASE("With no function to manage the loop leaves its thread; Wake() brings it back") {
  using faasd::testing::Eventually;
  LoopRig rig;
  ScalingProvider& provider = rig.provider;
  Autoscaler& scaler = rig.scaler;
  provider.Add("plain", {});
  scaler.Start();
  REQUIRE(Eventually([&] { return !scaler.Awake(); }));
  // Asleep: no more passes, so no more listing.
  const int calls = provider.NamespaceCalls();
  CHECK(calls >= 1);
  absl::SleepFor(absl::Milliseconds(100));  // ten intervals: a loop still awake would list again
  CHECK(provider.NamespaceCalls() == calls);

  provider.Add("auto", {{"com.openfaas.scale.target", "1"}});
  scaler.Wake();
  CHECK(scaler.Awake());
  REQUIRE(Eventually([&] { return scaler.Desired().count("auto.openfaas-fn") == 1; }));
  // Managed now: it keeps its thread pass after pass.
  const int more = provider.NamespaceCalls();
  REQUIRE(Eventually([&] { return provider.NamespaceCalls() >= more + 3; }));
  CHECK(scaler.Awake());

  // Its labels gone, the loop sleeps again.
  provider::FunctionDeployment unlabelled;
  unlabelled.service = "auto";
  unlabelled.image = "r/fn:1";
  REQUIRE(provider.Update(unlabelled).ok());
  REQUIRE(Eventually([&] { return !scaler.Awake(); }));
  CHECK(scaler.Desired().empty());
  scaler.Stop();
  scaler.Wake();  // after Stop(): nothing starts
  CHECK_FALSE(scaler.Awake());
}

TEST_CASE("A pass the provider did not answer never puts the loop to sleep") {
  using faasd::testing::Eventually;
  LoopRig rig;
  ScalingProvider& provider = rig.provider;
  Autoscaler& scaler = rig.scaler;
  provider.Add("auto", {{"com.openfaas.scale.target", "1"}});
  provider.SetUnavailable(true);
  scaler.Start();
  REQUIRE(Eventually([&] { return provider.NamespaceCalls() >= 3; }));
  CHECK(scaler.Awake());
  provider.SetUnavailable(false);
  REQUIRE(Eventually([&] { return scaler.Desired().count("auto.openfaas-fn") == 1; }));
  CHECK(scaler.Awake());
}
