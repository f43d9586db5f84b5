// The autoscaler's arithmetic with times the test picks: labels, rate window, proportion,
// clamps, the down window, scale to zero, min == max.
#include "autoscaler/policy.h"

#include "catch.hpp"

using namespace faasd::autoscaler;

namespace {

using Labels = std::map<std::string, std::string>;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

AutoscalePolicy Policy(const Labels& labels) {
  std::vector<std::string> warnings;
  AutoscalePolicy p = ParsePolicy(labels, false, &warnings);
  INFO(warnings.size() << " warnings");
  CHECK(warnings.empty());
  return p;
}

// A function the test drives tick by tick: `rps` requests per second arrive between ticks.
struct Driven {
  FunctionScaler scaler{absl::Seconds(30)};
  AutoscalePolicy policy;
  Observation o;
  explicit Driven(AutoscalePolicy p, uint64_t replicas = 1) : policy(std::move(p)) {
    o.now = kT0;
    o.replicas = o.ready = replicas;
  }
  // Advances `seconds` at `rps`, applies any change at once (as if ready at once).
  Decision Tick(double seconds, double rps) {
    o.now += absl::Seconds(seconds);
    o.started += static_cast<uint64_t>(seconds * rps);
    Decision d = scaler.Next(policy, o);
    if (d.change) o.replicas = o.ready = d.replicas;
    return d;
  }
};

}  // namespace

TEST_CASE("ParseGoDuration takes Go's syntax and refuses the rest") {
  CHECK(*ParseGoDuration("30s") == absl::Seconds(30));
  CHECK(*ParseGoDuration("10m") == absl::Minutes(10));
  CHECK(*ParseGoDuration("1h30m") == absl::Minutes(90));
  CHECK(*ParseGoDuration("1.5h") == absl::Minutes(90));
  CHECK(*ParseGoDuration("300ms") == absl::Milliseconds(300));
  CHECK(*ParseGoDuration("0") == absl::ZeroDuration());
  for (const char* bad : {"", "15", "abc", "-5s", "5 minutes", "inf", "1d"}) {
    INFO(bad);
    CHECK_FALSE(ParseGoDuration(bad).ok());
  }
}

TEST_CASE("ParsePolicy: defaults, every label, and who is managed") {
  std::vector<std::string> w;
  AutoscalePolicy none = ParsePolicy({}, false, &w);
  CHECK_FALSE(none.managed);
  CHECK(none.type == ScaleType::kRps);
  CHECK(none.target == 50);
  CHECK(none.proportion == Approx(0.90));
  CHECK(none.min == 1);
  CHECK(none.max == 20);
  CHECK_FALSE(none.zero);
  CHECK(none.zero_duration == absl::Minutes(15));
  CHECK(none.down_window == absl::ZeroDuration());
  CHECK(ParsePolicy({}, true, &w).managed);  // --autoscale-all
  // min, max and factor alone bound manual scaling and alerts; they do not hand the function
  // to the autoscaler.
  CHECK_FALSE(ParsePolicy({{"com.openfaas.scale.min", "2"},
                           {"com.openfaas.scale.max", "3"},
                           {"com.openfaas.scale.factor", "50"}},
                          false, &w)
                  .managed);
  CHECK(w.empty());

  AutoscalePolicy p = Policy({{"com.openfaas.scale.type", "capacity"},
                              {"com.openfaas.scale.target", "5"},
                              {"com.openfaas.scale.target-proportion", "0.5"},
                              {"com.openfaas.scale.min", "2"},
                              {"com.openfaas.scale.max", "7"},
                              {"com.openfaas.scale.zero", "true"},
                              {"com.openfaas.scale.zero-duration", "1h30m"},
                              {"com.openfaas.scale.down.window", "45s"}});
  CHECK(p.managed);
  CHECK(p.type == ScaleType::kCapacity);
  CHECK(p.target == 5);
  CHECK(p.proportion == 0.5);
  CHECK(p.min == 2);
  CHECK(p.max == 7);
  CHECK(p.zero);
  CHECK(p.zero_duration == absl::Minutes(90));
  CHECK(p.down_window == absl::Seconds(45));
  CHECK(Policy({{"com.openfaas.scale.type", "cpu"}}).type == ScaleType::kCpu);
  CHECK(Policy({{"com.openfaas.scale.zero", "false"}}).managed);
}

TEST_CASE("Bad label values are ignored with a warning each, never fatal") {
  std::vector<std::string> w;
  AutoscalePolicy p = ParsePolicy({{"com.openfaas.scale.type", "memory"},
                                   {"com.openfaas.scale.target", "-3"},
                                   {"com.openfaas.scale.target-proportion", "1.5"},
                                   {"com.openfaas.scale.zero", "yes please"},
                                   {"com.openfaas.scale.zero-duration", "15"},
                                   {"com.openfaas.scale.down.window", "soon"}},
                                  false, &w);
  CHECK(p.managed);
  CHECK(p.type == ScaleType::kRps);
  CHECK(p.target == 50);
  CHECK(p.proportion == Approx(0.90));
  CHECK_FALSE(p.zero);
  CHECK(p.zero_duration == absl::Minutes(15));
  CHECK(p.down_window == absl::ZeroDuration());
  REQUIRE(w.size() == 6);
  CHECK(w[0].find("com.openfaas.scale.type=\"memory\"") != std::string::npos);
  CHECK(w[0].find("using rps") != std::string::npos);
  // A range the provider would refuse is not autoscaled at all.
  w.clear();
  CHECK_FALSE(
      ParsePolicy({{"com.openfaas.scale.type", "rps"}, {"com.openfaas.scale.min", "x"}}, false, &w)
          .managed);
  CHECK(w.size() == 1);
  for (const char* target : {"abc", "0", "nan", "inf", ""}) {
    INFO(target);
    w.clear();
    CHECK(ParsePolicy({{"com.openfaas.scale.target", target}}, false, &w).target == 50);
    CHECK(w.size() == 1);
  }
}

TEST_CASE("DesiredReplicas is ceil(load / (target x proportion)) within min..max") {
  AutoscalePolicy p;  // 50 x 0.9 = 45 per replica, 1..20
  CHECK(DesiredReplicas(0, p) == 1);
  CHECK(DesiredReplicas(45, p) == 1);
  CHECK(DesiredReplicas(45.5, p) == 2);
  CHECK(DesiredReplicas(90, p) == 2);  // exactly two replicas' worth: not three
  CHECK(DesiredReplicas(100, p) == 3);
  CHECK(DesiredReplicas(1e12, p) == 20);
  p.target = 5;
  CHECK(DesiredReplicas(9, p) == 2);  // 9 / 4.5 lands a hair over 2 in doubles
  p.proportion = 1;
  CHECK(DesiredReplicas(11, p) == 3);
  p.min = 2;
  p.max = 4;
  CHECK(DesiredReplicas(0, p) == 2);
  CHECK(DesiredReplicas(40, p) == 4);
}

TEST_CASE("rps over the window: up at once, and down as the window forgets") {
  Driven f(Policy({{"com.openfaas.scale.target", "5"}, {"com.openfaas.scale.max", "4"}}));
  CHECK_FALSE(f.Tick(0, 0).change);  // the first look has no rate yet
  Decision d = f.Tick(2, 40);        // 40 rps / 4.5 per replica: 9, clamped to 4
  CHECK(d.change);
  CHECK(d.replicas == 4);
  CHECK(d.load == Approx(40));
  CHECK(d.why.find("rps 40") != std::string::npos);
  for (int i = 0; i < 9; ++i) CHECK_FALSE(f.Tick(2, 40).change);  // 20 s of load
  // Load stops: the 30 s window still holds most of it, then drains.
  d = f.Tick(2, 0);
  CHECK_FALSE(d.change);
  CHECK(d.load == Approx(800 / 22.0));  // 800 requests over the 22 s seen so far
  int seconds = 2;
  while (!(d = f.Tick(2, 0)).change && seconds < 60) seconds += 2;
  CHECK(d.replicas < 4);
  CHECK(seconds >= 10);
  CHECK(seconds <= 24);
  while (f.o.replicas > 1 && seconds < 60) {
    f.Tick(2, 0);
    seconds += 2;
  }
  CHECK(f.o.replicas == 1);
  CHECK(seconds <= 32);  // once the window holds no request
}

TEST_CASE("The rate spans the window, not the time since the last tick") {
  FunctionScaler s(absl::Seconds(30));
  AutoscalePolicy p = Policy({{"com.openfaas.scale.target", "10"}});
  Observation o;
  o.now = kT0;
  o.replicas = o.ready = 1;
  s.Next(p, o);
  for (int i = 1; i <= 20; ++i) {  // 10 rps for 20 s, then 20 s of nothing
    o.now += absl::Seconds(1);
    o.started += 10;
    s.Next(p, o);
  }
  CHECK(s.Rate() == Approx(10));
  for (int i = 1; i <= 20; ++i) {
    o.now += absl::Seconds(1);
    s.Next(p, o);
  }
  CHECK(s.Rate() == Approx(10 * 10 / 30.0).margin(0.5));  // 10 s of load left in 30 s
}

TEST_CASE("The down window holds the highest recommendation it saw") {
  Driven f(Policy({{"com.openfaas.scale.type", "capacity"},
                   {"com.openfaas.scale.target", "1"},
                   {"com.openfaas.scale.target-proportion", "1"},
                   {"com.openfaas.scale.down.window", "10s"}}));
  f.o.in_flight = 0;
  f.Tick(0, 0);
  f.o.in_flight = 6;
  Decision d = f.Tick(2, 0);
  CHECK(d.change);
  CHECK(d.replicas == 6);  // up at once, even inside the window
  f.o.in_flight = 2;
  int seconds = 0;
  while (!(d = f.Tick(2, 0)).change && seconds < 30) seconds += 2;
  CHECK(d.replicas == 2);
  CHECK(seconds >= 8);  // not before the 6 leaves the 10 s window
  CHECK(seconds <= 10);
  CHECK(d.why.find("down window of 10s") != std::string::npos);
}

TEST_CASE("A fresh scaler waits a whole down window before scaling down") {
  Driven f(Policy({{"com.openfaas.scale.down.window", "20s"}}), 5);
  int seconds = 0;
  Decision d;
  while (!(d = f.Tick(2, 0)).change && seconds < 60) seconds += 2;
  CHECK(d.replicas == 1);
  CHECK(seconds >= 18);
}

TEST_CASE("min == max turns load scaling off") {
  Driven f(Policy({{"com.openfaas.scale.type", "rps"},
                   {"com.openfaas.scale.min", "3"},
                   {"com.openfaas.scale.max", "3"}}),
           3);
  f.Tick(0, 0);
  CHECK_FALSE(f.Tick(2, 1000).change);
  CHECK_FALSE(f.Tick(60, 0).change);
  CHECK(f.o.replicas == 3);
}

TEST_CASE("Scale to zero after zero-duration idle; in-flight and queued work keep it up") {
  Driven f(
      Policy({{"com.openfaas.scale.zero", "true"}, {"com.openfaas.scale.zero-duration", "10s"}}));
  f.Tick(0, 0);
  f.Tick(4, 1);  // busy until 4 s
  CHECK_FALSE(f.Tick(4, 0).change);
  f.o.in_flight = 1;  // a long request: not idle however long it runs
  CHECK_FALSE(f.Tick(20, 0).change);
  f.o.in_flight = 0;
  f.o.busy = true;  // queued async work
  CHECK_FALSE(f.Tick(20, 0).change);
  f.o.busy = false;
  CHECK_FALSE(f.Tick(6, 0).change);
  Decision d = f.Tick(4, 0);  // 10 s after the last sign of work
  CHECK(d.change);
  CHECK(d.replicas == 0);
  CHECK(d.why.find("idle for 10s") != std::string::npos);
  // At zero nothing happens until a request wakes it (the provider's job).
  CHECK_FALSE(f.Tick(60, 0).change);
  f.o.replicas = f.o.ready = 1;  // woken
  f.o.started += 1;
  CHECK_FALSE(f.Tick(2, 0).change);
  CHECK_FALSE(f.Tick(8, 0).change);
  CHECK(f.Tick(2, 0).replicas == 0);
}

TEST_CASE("Without zero=true an idle function stays at its minimum") {
  Driven f(Policy({{"com.openfaas.scale.zero-duration", "1s"}}));
  f.Tick(0, 0);
  CHECK_FALSE(f.Tick(3600, 0).change);
  CHECK(f.o.replicas == 1);
}

TEST_CASE("A fresh scaler gives an idle function its whole zero-duration") {
  Driven f(Policy({{"com.openfaas.scale.zero", "true"}}));  // 15m
  f.o.started = 500;  // counted before this scaler first looked
  CHECK_FALSE(f.Tick(0, 0).change);
  CHECK_FALSE(f.Tick(14 * 60, 0).change);
  CHECK(f.Tick(60, 0).replicas == 0);
}

TEST_CASE("cpu: millicores over target") {
  Driven f(Policy({{"com.openfaas.scale.type", "cpu"}, {"com.openfaas.scale.target", "100"}}));
  f.Tick(0, 0);
  f.o.cpu_millicores = 300;  // 300 / 90 -> 4
  Decision d = f.Tick(2, 0);
  CHECK(d.replicas == 4);
  CHECK(d.why.find("cpu 300 (300 per ready replica of 1") != std::string::npos);
}
