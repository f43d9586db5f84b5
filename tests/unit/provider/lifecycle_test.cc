// The provider's lifecycle (deploy, scale, wake from zero, restart and back-off, update,
// remove, reconcile) driven through its faces: the real ContainerdProvider over an in-memory
// runtime, network, image source, probe and clock. Background work is waited for by polling
// with a deadline, never by sleeping a guessed time.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/notification.h"
#include "base/log.h"
#include "catch.hpp"
#include "eventually.h"
#include "fake_network.h"
#include "fake_runtime.h"
#include "fakes.h"
#include "gateway/http_errors.h"
#include "provider/containerd_provider.h"

namespace faasd::provider::testing {
namespace {

constexpr char kNs[] = "openfaas-fn";
constexpr char kKey[] = "echo.openfaas-fn";

// The fakes answer in microseconds: poll often.
bool Eventually(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(5)) {
  return ::faasd::testing::Eventually(done, timeout, absl::Milliseconds(1));
}

FunctionDeployment Fn(const std::string& name, std::map<std::string, std::string> labels = {},
                      const std::string& image = "registry.local/echo:1") {
  FunctionDeployment d;
  d.service = name;
  d.image = image;
  d.labels = std::move(labels);
  return d;
}

// The provider, started, over fakes, with its state in a fresh temporary folder. Tasks at zero
// are stopped unless `max_paused` says how many may stay paused.
struct Rig {
  explicit Rig(absl::Duration reconcile_interval = absl::Milliseconds(20), size_t max_paused = 0) {
    char tmpl[] = "/tmp/faasd-lifecycle-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    ProviderOptions o;
    o.state_dir = dir;
    o.nameservers = {"10.0.0.53"};
    o.reconcile_interval = reconcile_interval;
    o.stop_grace = absl::Seconds(5);
    o.deploy_ready_wait = absl::Seconds(2);
    o.update_ready_wait = absl::Seconds(5);
    o.max_paused = max_paused;
    o.paused_ttl = absl::Minutes(1);
    provider = std::make_unique<ContainerdProvider>(o, runtime, images, network, probe, clock);
    REQUIRE(provider->Start().ok());
    // Subscribed before a test makes a task exit, as containerd's stream is in the daemon.
    REQUIRE(Eventually([&] { return runtime.Subscribed(); }));
  }
  ~Rig() {
    provider->Stop();
    provider.reset();
    std::filesystem::remove_all(dir);
  }

  std::vector<std::string> Ips(const std::string& key = kKey) const {
    std::vector<std::string> out;
    auto snap = provider->Snapshot();
    auto it = snap->functions.find(key);
    if (it != snap->functions.end()) {
      for (const Endpoint& e : it->second) out.push_back(e.ip);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> Ids() const {
    std::vector<std::string> out;
    for (const auto& c : runtime.Containers(kNs)) out.push_back(c.id());
    return out;
  }
  // Until at least one whole reconcile pass has run after this call.
  void AwaitPass() {
    const int before = runtime.TaskListings();
    REQUIRE(Eventually([&] { return runtime.TaskListings() >= before + 2; }));
  }
  bool Journaled(const std::string& line) const {
    auto j = runtime.Journal();
    return std::find(j.begin(), j.end(), line) != j.end();
  }

  FakeClock clock;
  FakeRuntime runtime{clock};
  FakeNetwork network;
  FakeImages images;
  FakeProbe probe;
  std::string dir;
  std::unique_ptr<ContainerdProvider> provider;  // last: stopped before the fakes go
};

TEST_CASE("Deploy starts the minimum scale of replicas, each routed at its own address") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "3"}})).ok());

  auto containers = rig.runtime.Containers(kNs);
  REQUIRE(containers.size() == 3);
  std::vector<std::string> ips;
  for (const auto& c : containers) {
    CHECK(c.id().rfind("echo-", 0) == 0);
    CHECK(c.labels().at("faasd.function") == "echo");
    CHECK(c.labels().at("faasd.replicas") == "3");
    CHECK(c.image() == "registry.local/echo:1");
    REQUIRE(rig.network.LookupIp(c.id()));
    ips.push_back(*rig.network.LookupIp(c.id()));
  }
  std::sort(ips.begin(), ips.end());
  CHECK(rig.Ips() == ips);
  CHECK(std::set<std::string>(ips.begin(), ips.end()).size() == 3);
  CHECK(rig.provider->Snapshot()->functions.at(kKey).front().port == 8080);
  CHECK(rig.runtime.RunningTasks(kNs).size() == 3);
  CHECK(rig.runtime.Leases() == 0);  // each container holds its snapshot itself

  // The image is pulled by policy once; the other replicas take it as it is.
  auto pulls = rig.images.Pulls();
  REQUIRE(pulls.size() == 3);
  CHECK(pulls[0].policy == image::PullPolicy::kAlways);
  CHECK(pulls[1].policy == image::PullPolicy::kIfNotPresent);
  CHECK(pulls[0].ns == kNs);

  absl::StatusOr<FunctionStatus> st = rig.provider->Get("echo", "");
  REQUIRE(st.ok());
  CHECK(st->replicas == 3);
  CHECK(st->available_replicas == 3);
  CHECK(rig.provider->Deploy(Fn("echo")).code() == absl::StatusCode::kAlreadyExists);
}

TEST_CASE("Scale moves the replica count within the labels' range and refuses the rest") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.max", "4"}})).ok());
  REQUIRE(rig.Ids().size() == 1);

  REQUIRE(rig.provider->Scale("echo", "", 3).ok());
  REQUIRE(Eventually(
      [&] { return rig.Ips().size() == 3 && rig.runtime.RunningTasks(kNs).size() == 3; }));
  for (const auto& c : rig.runtime.Containers(kNs)) CHECK(c.labels().at("faasd.replicas") == "3");
  CHECK(rig.provider->Get("echo", "")->replicas == 3);

  absl::Status over = rig.provider->Scale("echo", "", 5);
  CHECK(over.code() == absl::StatusCode::kInvalidArgument);
  CHECK(gateway::HttpStatusFor(over) == 400);
  CHECK(std::string(over.message()).find("1..4") != std::string::npos);
  CHECK(rig.provider->Get("echo", "")->replicas == 3);

  REQUIRE(rig.provider->Deploy(Fn("pair", {{"com.openfaas.scale.min", "2"}})).ok());
  CHECK(gateway::HttpStatusFor(rig.provider->Scale("pair", "", 1)) == 400);
  CHECK(rig.provider->Scale("pair", "", 0).ok());  // zero is always allowed

  REQUIRE(rig.provider->Scale("echo", "", 1).ok());
  REQUIRE(Eventually([&] { return rig.Ips().size() == 1; }));
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  REQUIRE(Eventually([&] {
    int echoes = 0;
    for (const auto& id : rig.Ids()) echoes += id.rfind("echo-", 0) == 0 ? 1 : 0;
    return echoes == 1;
  }));
}

TEST_CASE("Scale to zero stops every task and keeps one container, without a network") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  REQUIRE(rig.provider->Scale("echo", "", 0).ok());
  CHECK(rig.Ips().empty());  // out of routing at once
  REQUIRE(Eventually(
      [&] { return rig.runtime.Tasks(kNs) == 0 && rig.runtime.Containers(kNs).size() == 1; }));
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  const std::string kept = rig.Ids().at(0);
  // No address or namespace held at zero (the next start attaches new ones).
  REQUIRE(Eventually([&] { return !rig.network.LookupIp(kept); }));
  CHECK_FALSE(rig.network.IsNetns(rig.dir + "/netns/" + kept));
  CHECK(rig.network.AttachedContainers().empty());
  CHECK(rig.provider->Snapshot()->functions.count(kKey) == 1);  // still a known function
  absl::StatusOr<FunctionStatus> st = rig.provider->Get("echo", "");
  REQUIRE(st.ok());
  CHECK(st->replicas == 0);
  CHECK(st->available_replicas == 0);
}

TEST_CASE("A replica left starting is probed again soon, whatever back-off others reached") {
  Rig rig(absl::Hours(1));  // no periodic pass: only retries probe
  rig.probe.SetReady(false);
  // One function that never gets ready: its retries back off, 100 ms doubling.
  REQUIRE(rig.provider->Deploy(Fn("slow")).ok());
  int probes = rig.probe.Probes();
  REQUIRE(Eventually([&] { return rig.probe.Probes() >= probes + 6; },
                     absl::Seconds(15)));  // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s apart, and more
  // Another, deployed now, not ready either at first: its deploy probes, then the loop does.
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  probes = rig.probe.Probes();
  REQUIRE(Eventually([&] { return rig.probe.Probes() > probes; }, absl::Seconds(1)));
  rig.probe.SetReady(true);
  // Routed at the next retry: within a few hundred ms, not the 6.4 s or more the first
  // function's back-off had reached (nor ever more than 2 s apart).
  CHECK(Eventually([&] { return rig.Ips(kKey).size() == 1; }, absl::Seconds(2.5)));
}

TEST_CASE("Requests to a function at zero start one task however many wait") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  REQUIRE(rig.provider->Scale("echo", "", 0).ok());
  REQUIRE(Eventually([&] { return rig.runtime.Tasks(kNs) == 0; }));
  const std::string kept = rig.Ids().at(0);
  const size_t starts = rig.runtime.Starts().size();
  const size_t journaled = rig.runtime.Journal().size();

  // Not ready until every waiter is in: the wake is under way while they arrive.
  rig.probe.SetReady(false);
  constexpr int kWaiters = 8;
  absl::Barrier barrier(kWaiters);
  std::vector<std::future<size_t>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::async(std::launch::async, [&] {
      barrier.Block();
      auto snap = rig.provider->AwaitReady(kKey, absl::Now() + absl::Seconds(10));
      return snap ? snap->functions.at(kKey).size() : size_t{0};
    }));
  }
  REQUIRE(Eventually([&] { return rig.runtime.Starts().size() == starts + 1; }));
  const int probes = rig.probe.Probes();
  REQUIRE(Eventually([&] { return rig.probe.Probes() >= probes + 3; }));  // waiting on it
  rig.probe.SetReady(true);
  for (auto& w : waiters) CHECK(w.get() == 1);

  CHECK(rig.runtime.Starts().size() == starts + 1);
  CHECK(rig.runtime.Starts().back().id == kept);
  auto journal = rig.runtime.Journal();
  CHECK(std::count(journal.begin() + journaled, journal.end(), "create " + kept) == 1);
  CHECK(rig.provider->Get("echo", "")->replicas == 1);
  CHECK(rig.Ips() == std::vector<std::string>{*rig.network.LookupIp(kept)});
}

// Every log line, for the test's lifetime.
struct LogCapture {
  LogCapture() {
    SetLogWriter([this](std::string_view line) {
      absl::MutexLock l(&mu);
      lines.emplace_back(line);
      return true;
    });
  }
  ~LogCapture() { SetLogWriter(nullptr); }
  bool Has(const std::string& text) {
    absl::MutexLock l(&mu);
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.find(text) != std::string::npos;
    });
  }
  absl::Mutex mu;
  std::vector<std::string> lines ABSL_GUARDED_BY(mu);
};

TEST_CASE("An OOM kill containerd sends no /tasks/oom for is named from the task's cgroup") {
  // containerd's shim drops the event when the cgroup is gone before it reads the kernel's
  // notice; CI once saw such a replica reported as "Error".
  LogCapture log;
  Rig rig(absl::Milliseconds(5));
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  const std::string id = rig.Ids().at(0);
  rig.runtime.CountOomKill(kNs, id);
  rig.runtime.Exit(kNs, id, 137);
  REQUIRE(Eventually([&] { return rig.runtime.Starts().size() == 2; }));
  CHECK(log.Has("exited with status 137 (OOM-killed: 1 kill(s) in its cgroup, no /tasks/oom"));
  CHECK(log.Has("containerd sent no /tasks/oom"));
  absl::StatusOr<FunctionStatus> st = rig.provider->Get("echo", kNs);
  REQUIRE(st.ok());
  REQUIRE(st->last_exit.has_value());
  CHECK(st->last_exit->oom_killed);
  CHECK(ToJson(*st)["lastExit"]["reason"] == "OOMKilled");

  // The new task's cgroup is a new one: its plain crash is not an OOM kill.
  rig.runtime.Exit(kNs, id, 1);
  rig.AwaitPass();
  rig.clock.Advance(absl::Milliseconds(250));  // the second restart in a row backs off
  REQUIRE(Eventually([&] { return rig.runtime.Starts().size() == 3; }));
  st = rig.provider->Get("echo", kNs);
  REQUIRE(st.ok());
  REQUIRE(st->last_exit.has_value());
  CHECK(st->last_exit->exit_code == 1);
  CHECK_FALSE(st->last_exit->oom_killed);
}

TEST_CASE("A task whose cgroup counted an OOM kill is deleted only after containerd's event") {
  // Deleting the task removes its cgroup, and with it containerd's chance to report the kill
  // to anyone else who follows its events.
  Rig rig(absl::Milliseconds(5));
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  const std::string id = rig.Ids().at(0);
  const int calls = rig.runtime.MetricsCalls();
  rig.runtime.CountOomKill(kNs, id);
  rig.runtime.Exit(kNs, id, 137);
  // The provider has read the cgroup's count; containerd's notice comes after that.
  REQUIRE(Eventually([&] { return rig.runtime.MetricsCalls() > calls; }));
  rig.runtime.Oom(kNs, id);
  REQUIRE(Eventually([&] { return rig.runtime.Starts().size() == 2; }));
  auto journal = rig.runtime.Journal();
  auto oom = std::find(journal.begin(), journal.end(), "oom " + id);
  auto deleted = std::find(journal.begin(), journal.end(), "delete-task " + id);
  REQUIRE(oom != journal.end());
  REQUIRE(deleted != journal.end());
  CHECK(oom < deleted);
  absl::StatusOr<FunctionStatus> st = rig.provider->Get("echo", kNs);
  REQUIRE(st.ok());
  REQUIRE(st->last_exit.has_value());
  CHECK(st->last_exit->oom_killed);
}

TEST_CASE("A replica that exits is restarted; one that keeps crashing backs off, 250 ms doubling") {
  LogCapture log;  // before the rig: it outlives the provider's threads
  Rig rig(absl::Milliseconds(5));
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  const std::string id = rig.Ids().at(0);
  auto starts = [&] { return rig.runtime.Starts().size(); };
  REQUIRE(starts() == 1);

  // The first exit is restarted at once (the clock stands still), and an OOM kill is named.
  const int handled = rig.runtime.EventsHandled();
  rig.runtime.Oom(kNs, id);
  REQUIRE(Eventually([&] { return rig.runtime.EventsHandled() > handled; }));
  rig.runtime.Exit(kNs, id, 137);
  REQUIRE(Eventually([&] { return starts() == 2; }));
  CHECK(log.Has("exited with status 137 (OOM-killed)"));
  REQUIRE(Eventually([&] { return rig.Ips().size() == 1; }));
  // The function's status says so too.
  absl::StatusOr<FunctionStatus> st = rig.provider->Get("echo", kNs);
  REQUIRE(st.ok());
  REQUIRE(st->last_exit.has_value());
  CHECK(st->last_exit->instance == id);
  CHECK(st->last_exit->exit_code == 137);
  CHECK(st->last_exit->oom_killed);
  CHECK(st->last_exit->restarts_in_a_row == 1);
  CHECK(ToJson(*st)["lastExit"]["reason"] == "OOMKilled");

  // Then each waits twice as long as the one before.
  for (absl::Duration delay :
       {absl::Milliseconds(250), absl::Milliseconds(500), absl::Seconds(1)}) {
    INFO("back-off " << absl::FormatDuration(delay));
    const size_t before = starts();
    rig.runtime.Exit(kNs, id, 1);
    rig.AwaitPass();
    CHECK(starts() == before);
    CHECK(rig.Ips().empty());  // a replica waiting out its back-off is not routed
    rig.clock.Advance(delay - absl::Milliseconds(1));
    rig.AwaitPass();
    CHECK(starts() == before);
    rig.clock.Advance(absl::Milliseconds(1));
    REQUIRE(Eventually([&] { return starts() == before + 1; }));
  }
  auto s = rig.runtime.Starts();
  REQUIRE(s.size() == 5);
  std::vector<absl::Duration> gaps;
  for (size_t i = 1; i < s.size(); ++i) gaps.push_back(s[i].at - s[i - 1].at);
  CHECK(gaps == std::vector<absl::Duration>{absl::ZeroDuration(), absl::Milliseconds(250),
                                            absl::Milliseconds(500), absl::Seconds(1)});
  st = rig.provider->Get("echo", kNs);
  REQUIRE(st.ok());
  REQUIRE(st->last_exit.has_value());
  CHECK(st->last_exit->exit_code == 1);
  CHECK_FALSE(st->last_exit->oom_killed);  // an OOM kill is named for its own exit only
  CHECK(st->last_exit->restarts_in_a_row == 4);
  CHECK(ToJson(*st)["lastExit"]["reason"] == "Error");

  // A replica that ran for a minute counts from zero again: restarted at once, and the next
  // back-off is 250 ms again.
  rig.clock.Advance(absl::Minutes(1) + absl::Seconds(1));
  rig.runtime.Exit(kNs, id, 1);
  REQUIRE(Eventually([&] { return starts() == 6; }));
  CHECK(rig.runtime.Starts().back().at == rig.clock.Now());
  REQUIRE(Eventually([&] { return rig.Ips().size() == 1; }));
  rig.runtime.Exit(kNs, id, 1);
  rig.AwaitPass();
  CHECK(starts() == 6);
  rig.clock.Advance(absl::Milliseconds(250));
  REQUIRE(Eventually([&] { return starts() == 7; }));
  REQUIRE(Eventually([&] { return rig.Ips().size() == 1; }));
}

TEST_CASE("Update is blue-green: the new generation is ready before the old one is retired") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  const std::vector<std::string> old_ids = rig.Ids();
  const std::vector<std::string> old_ips = rig.Ips();
  REQUIRE(old_ips.size() == 2);

  rig.probe.SetReady(false);
  auto update = std::async(std::launch::async, [&] {
    return rig.provider->Update(
        Fn("echo", {{"com.openfaas.scale.min", "2"}}, "registry.local/echo:2"));
  });
  REQUIRE(Eventually([&] { return rig.runtime.RunningTasks(kNs).size() == 4; }));
  const int probes = rig.probe.Probes();
  REQUIRE(Eventually([&] { return rig.probe.Probes() >= probes + 3; }));
  // New replicas started but not ready: the old ones serve, untouched.
  CHECK(update.wait_for(std::chrono::seconds(0)) != std::future_status::ready);
  CHECK(rig.Ips() == old_ips);
  for (const std::string& id : old_ids) {
    CHECK_FALSE(rig.Journaled("label " + id + " removing"));
    CHECK_FALSE(rig.Journaled("kill " + id + " 15"));
  }

  rig.probe.SetReady(true);
  REQUIRE(update.get().ok());
  std::vector<std::string> new_ips = rig.Ips();
  REQUIRE(new_ips.size() == 2);
  for (const std::string& ip : new_ips) {
    CHECK(std::find(old_ips.begin(), old_ips.end(), ip) == old_ips.end());
  }
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  auto containers = rig.runtime.Containers(kNs);
  REQUIRE(containers.size() == 2);
  for (const auto& c : containers) {
    CHECK(c.image() == "registry.local/echo:2");
    CHECK(std::find(old_ids.begin(), old_ids.end(), c.id()) == old_ids.end());
  }
  for (const std::string& id : old_ids) CHECK(rig.Journaled("delete " + id));
}

TEST_CASE("Remove takes the function out of routing at once and its containers in the background") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  const std::vector<std::string> ids = rig.Ids();
  rig.runtime.IgnoreSigterm(true);  // slow to stop: removal waits for it

  REQUIRE(rig.provider->Remove("echo", "").ok());
  CHECK(rig.provider->Snapshot()->functions.count(kKey) == 0);
  CHECK(rig.provider->Get("echo", "").status().code() == absl::StatusCode::kNotFound);
  CHECK(rig.provider->List("")->empty());
  CHECK(rig.runtime.Containers(kNs).size() == 2);  // still stopping
  for (const std::string& id : ids) {
    REQUIRE(Eventually([&] { return rig.Journaled("kill " + id + " 15"); }));
  }
  CHECK_FALSE(rig.provider->WaitForRemovals(absl::ZeroDuration()));

  for (const std::string& id : ids) rig.runtime.Exit(kNs, id, 0);  // they stop, at last
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  // Their threads were joined by one another, not left for the next background job.
  CHECK(Eventually([&] { return rig.provider->BackgroundThreads() <= 1; }));
  CHECK(rig.runtime.Containers(kNs).empty());
  CHECK(rig.runtime.Tasks(kNs) == 0);
  CHECK(rig.runtime.Snapshots() == 0);
  CHECK(rig.network.AttachedContainers().empty());
  CHECK(rig.network.Namespaces() == 0);
  CHECK(std::filesystem::is_empty(rig.dir + "/run"));
}

TEST_CASE("A pass that listed while a remove was under way neither routes nor keeps it") {
  // The soak's order (a removed function came back with 2 new replicas): a remove has noted
  // its operation and holds the function's lock, not yet labelled its containers "removing";
  // a full pass lists them then; the remove ends; the pass reaches the function afterwards.
  Rig rig;  // a full pass every 20 ms
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  const std::vector<std::string> ids = rig.Ids();
  absl::Notification labelling, labels_go, listed, pass_go, next_listed, next_go;
  std::atomic<bool> first_label{true};
  std::atomic<int> listings{0};
  rig.runtime.SetHooks(
      [&] {
        if (!labelling.HasBeenNotified()) return;
        // The second listing since: its pass began after the remove had noted its operation.
        // The third: that pass is over, and the next has not touched routing yet.
        const int n = ++listings;
        if (n == 2) {
          listed.Notify();
          pass_go.WaitForNotificationWithTimeout(absl::Seconds(10));
        } else if (n == 3) {
          next_listed.Notify();
          next_go.WaitForNotificationWithTimeout(absl::Seconds(10));
        }
      },
      [&](const std::string&, const containerd::Labels& labels) {
        auto st = labels.find("faasd.state");
        if (st != labels.end() && st->second == "removing" && first_label.exchange(false)) {
          labelling.Notify();
          labels_go.WaitForNotificationWithTimeout(absl::Seconds(10));
        }
      });
  rig.runtime.IgnoreSigterm(true);  // slow to stop: its tasks still run when the pass goes on
  absl::Status removed;
  std::thread remover([&] { removed = rig.provider->Remove("echo", ""); });
  REQUIRE(labelling.WaitForNotificationWithTimeout(absl::Seconds(5)));
  const bool pass_listed = listed.WaitForNotificationWithTimeout(absl::Seconds(5));
  labels_go.Notify();
  remover.join();
  REQUIRE(pass_listed);  // a pass took its listing with the remove under way
  REQUIRE(removed.ok());
  CHECK(rig.provider->List("")->empty());
  pass_go.Notify();  // the pass goes on with what it listed
  REQUIRE(next_listed.WaitForNotificationWithTimeout(absl::Seconds(5)));
  // What that pass left (a later pass would drop a route it brought back).
  CHECK(rig.provider->List("")->empty());
  CHECK(rig.provider->Snapshot()->functions.count(kKey) == 0);
  CHECK(rig.runtime.Containers(kNs).size() == ids.size());
  rig.runtime.SetHooks({}, {});
  next_go.Notify();
  for (const std::string& id : ids) rig.runtime.Exit(kNs, id, 0);  // they stop, at last
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  rig.AwaitPass();
  CHECK(rig.runtime.Containers(kNs).empty());
  CHECK(rig.provider->List("")->empty());
  for (const auto& c : rig.runtime.Containers(kNs)) {
    CHECK(std::find(ids.begin(), ids.end(), c.id()) != ids.end());  // none made since
  }
}

TEST_CASE("Reconcile re-creates a replica that vanished and releases its address") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  const std::vector<std::string> ids = rig.Ids();
  const std::string gone = ids.at(0);
  const std::string generation = rig.runtime.Containers(kNs)[0].labels().at("faasd.generation");

  rig.runtime.Vanish(kNs, gone);
  REQUIRE(Eventually([&] {
    auto now = rig.Ids();
    return now.size() == 2 && std::find(now.begin(), now.end(), gone) == now.end() &&
           rig.Ips().size() == 2 && rig.runtime.RunningTasks(kNs).size() == 2;
  }));
  for (const auto& c : rig.runtime.Containers(kNs)) {
    CHECK(c.labels().at("faasd.generation") == generation);
    CHECK(c.labels().at("faasd.replicas") == "2");
  }
  REQUIRE(Eventually([&] { return !rig.network.LookupIp(gone); }));
  CHECK_FALSE(rig.network.IsNetns(rig.dir + "/netns/" + gone));
}

TEST_CASE("A snapshot and run directory left by a deploy cut short are released by reconcile") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  const std::string live = rig.Ids().at(0);
  // What a daemon killed between preparing the snapshot and creating the container leaves,
  // beside snapshots no run directory marks (an unpack in progress, another tool's).
  containerd::CallScope scope;
  scope.ns = kNs;
  const std::string late = "late-0123abcd";
  for (const std::string& key : {late, std::string("extract-1a2b3c-sha256:00ff"),
                                 std::string("late-xyz"), std::string("late-0123ABCD")}) {
    REQUIRE(rig.runtime.PrepareSnapshot(scope, key, "", {}).ok());
  }
  const std::string run_dir = rig.dir + "/run/" + late;
  std::filesystem::create_directories(run_dir);
  { std::ofstream(run_dir + "/hosts") << "127.0.0.1 localhost\n"; }

  REQUIRE(Eventually([&] {
    return rig.runtime.SnapshotKeys(kNs).count(late) == 0 && !std::filesystem::exists(run_dir);
  }));
  CHECK(rig.runtime.SnapshotKeys(kNs) == std::set<std::string>{live, "extract-1a2b3c-sha256:00ff", "late-xyz",
                                      "late-0123ABCD"});
  CHECK(std::filesystem::exists(rig.dir + "/run/" + live));
  CHECK(rig.provider->Get("echo", "").ok());
}

TEST_CASE("Deploy, scale, an exit and remove find their function without listing containers") {
  Rig rig(absl::Hours(1));  // no periodic pass: the start-up pass is the only listing
  const int listings = rig.runtime.ContainerListings();
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  REQUIRE(rig.provider->Deploy(Fn("other")).ok());
  CHECK(rig.provider->Deploy(Fn("echo")).code() == absl::StatusCode::kAlreadyExists);
  rig.runtime.Exit(kNs, rig.Ids().at(0), 1);
  REQUIRE(Eventually([&] { return rig.runtime.RunningTasks(kNs).size() == 2; }));
  REQUIRE(rig.provider->Scale("echo", kNs, 0).ok());
  REQUIRE(Eventually([&] { return rig.runtime.RunningTasks(kNs).size() == 1; }));
  REQUIRE(rig.provider->Remove("other", kNs).ok());
  REQUIRE(Eventually([&] { return rig.runtime.Containers(kNs).size() == 1; }));
  CHECK(rig.provider->Deploy(Fn("other")).ok());  // its removed container is out of the index
  CHECK(rig.runtime.ContainerListings() == listings);
}

TEST_CASE("An exit or a scale reconciles that function only, without listing every task") {
  Rig rig(absl::Hours(1));  // no periodic pass: every pass here is one the test caused
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  REQUIRE(rig.provider->Deploy(Fn("other")).ok());
  REQUIRE(rig.runtime.RunningTasks(kNs).size() == 2);
  const int listings = rig.runtime.TaskListings();
  const std::string id = rig.Ids().at(0);

  // A full pass lists the tasks before it acts, so none may have happened by the time the
  // replica is back.
  const size_t starts = rig.runtime.Starts().size();
  rig.runtime.Exit(kNs, id, 1);
  REQUIRE(Eventually([&] { return rig.runtime.Starts().size() == starts + 1; }));
  CHECK(rig.runtime.Starts().back().id == id);
  CHECK(rig.runtime.TaskListings() == listings);

  // The restarted replica is probed by the retry that follows (of that function); once it is
  // routed again nothing is pending.
  REQUIRE(Eventually([&] { return rig.Ips().size() == 1; }));
  REQUIRE(Eventually([&] { return rig.Ips("other.openfaas-fn").size() == 1; }));

  // Scale to zero: the same.
  const int before_scale = rig.runtime.TaskListings();
  REQUIRE(rig.provider->Scale("echo", kNs, 0).ok());
  REQUIRE(Eventually([&] { return rig.runtime.RunningTasks(kNs).size() == 1; }));
  CHECK(rig.runtime.TaskListings() == before_scale);
}

TEST_CASE("List and get answer from routing, which follows containerd") {
  Rig rig;
  REQUIRE(rig.provider->Deploy(Fn("echo", {{"com.openfaas.scale.min", "2"}})).ok());
  REQUIRE(rig.provider->Deploy(Fn("other", {}, "registry.local/other:2")).ok());
  REQUIRE(rig.provider->Scale("other", kNs, 0).ok());

  const int listings = rig.runtime.ContainerListings();
  absl::StatusOr<std::vector<FunctionStatus>> all = rig.provider->List(kNs);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  std::map<std::string, FunctionStatus> by_name;
  for (const auto& st : *all) by_name[st.name] = st;
  CHECK(by_name.at("echo").image == "registry.local/echo:1");
  CHECK(by_name.at("echo").replicas == 2);
  CHECK(by_name.at("echo").namespace_ == kNs);
  CHECK(by_name.at("other").image == "registry.local/other:2");
  CHECK(by_name.at("other").replicas == 0);
  absl::StatusOr<FunctionStatus> echo = rig.provider->Get("echo", kNs);
  REQUIRE(echo.ok());
  CHECK(echo->available_replicas == 2);
  CHECK(echo->created_at == by_name.at("echo").created_at);
  CHECK_FALSE(echo->created_at.empty());
  // Neither asked containerd for a listing (a pass may have run meanwhile: at most one).
  CHECK(rig.runtime.ContainerListings() - listings <= 1);

  // Containers removed behind the daemon's back leave list and get at the next pass.
  for (const std::string& id : rig.Ids()) {
    if (absl::StartsWith(id, "echo-")) rig.runtime.Vanish(kNs, id);
  }
  REQUIRE(Eventually([&] {
    absl::StatusOr<std::vector<FunctionStatus>> now = rig.provider->List(kNs);
    return now.ok() && now->size() == 1 && now->front().name == "other";
  }));
  CHECK(rig.provider->Get("echo", kNs).status().code() == absl::StatusCode::kNotFound);
  CHECK(rig.provider->Get("other", kNs).ok());
}

TEST_CASE("At zero the task is paused and a request resumes it; the oldest and the expired stop") {
  Rig rig(absl::Milliseconds(20), /*max_paused=*/1);
  REQUIRE(rig.provider->Deploy(Fn("echo")).ok());
  REQUIRE(rig.provider->Deploy(Fn("other")).ok());
  const std::string echo =
      rig.Ids().at(0).rfind("echo-", 0) == 0 ? rig.Ids().at(0) : rig.Ids().at(1);
  const std::string other = echo == rig.Ids().at(0) ? rig.Ids().at(1) : rig.Ids().at(0);
  const size_t starts = rig.runtime.Starts().size();

  REQUIRE(rig.provider->Scale("echo", kNs, 0).ok());
  REQUIRE(Eventually([&] { return rig.Journaled("pause " + echo); }));
  CHECK(rig.runtime.Tasks(kNs) == 2);  // frozen, not gone
  CHECK(rig.runtime.RunningTasks(kNs) == std::vector<std::string>{other});
  CHECK(rig.Ips().empty());

  // A request thaws it: no new task.
  auto snap = rig.provider->AwaitReady(kKey, absl::Now() + absl::Seconds(5));
  REQUIRE(snap);
  CHECK(snap->functions.at(kKey).size() == 1);
  CHECK(rig.Journaled("resume " + echo));
  CHECK(rig.runtime.Starts().size() == starts);
  CHECK(rig.provider->Get("echo", kNs)->replicas == 1);

  // Paused again; then `other` is paused too, one more than allowed: the older one stops.
  REQUIRE(rig.provider->Scale("echo", kNs, 0).ok());
  REQUIRE(Eventually([&] { return rig.runtime.RunningTasks(kNs).size() == 1; }));
  rig.clock.Advance(absl::Seconds(1));  // so that the two pauses are ordered
  REQUIRE(rig.provider->Scale("other", kNs, 0).ok());
  REQUIRE(
      Eventually([&] { return rig.Journaled("pause " + other) && rig.runtime.Tasks(kNs) == 1; }));
  CHECK(rig.Journaled("kill " + echo + " 9"));
  CHECK(rig.runtime.RunningTasks(kNs).empty());

  // Past the time a task may stay paused it is stopped too.
  rig.clock.Advance(absl::Minutes(2));
  REQUIRE(Eventually([&] { return rig.runtime.Tasks(kNs) == 0; }));

  // A stopped function at zero is started as before.
  snap = rig.provider->AwaitReady("other.openfaas-fn", absl::Now() + absl::Seconds(5));
  REQUIRE(snap);
  CHECK(rig.runtime.Starts().size() == starts + 1);

  // Removing a function whose task is paused thaws it so that it dies of the signal.
  REQUIRE(rig.provider->Scale("other", kNs, 0).ok());
  REQUIRE(Eventually(
      [&] { return rig.Journaled("pause " + other) && rig.runtime.RunningTasks(kNs).empty(); }));
  REQUIRE(rig.provider->Remove("other", kNs).ok());
  REQUIRE(rig.provider->WaitForRemovals(absl::Seconds(5)));
  CHECK(rig.runtime.Tasks(kNs) == 0);
  auto journal = rig.runtime.Journal();
  auto kill = std::find(journal.rbegin(), journal.rend(), "kill " + other + " 15");
  auto resume = std::find(journal.rbegin(), journal.rend(), "resume " + other);
  CHECK(kill != journal.rend());
  CHECK(resume < kill);  // resumed after the signal (reverse iterators)
}

}  // namespace
}  // namespace faasd::provider::testing
