// Start-up rediscovery and the reconcile loop: containerd says what is deployed; this keeps
// tasks running, routes current, and finishes removals a previous run left behind.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "events_task.pb.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"

namespace faasd::provider {

using namespace internal;

namespace {
// The longest gap between two probes of a replica left not ready.
constexpr absl::Duration kMaxRetryGap = absl::Seconds(2);
}  // namespace

absl::Status ContainerdProvider::Start() {
  absl::StatusOr<std::string> version = runtime_.Version(absl::Seconds(5));
  if (!version.ok()) return version.status();
  LogInfo("containerd ", *version, " at ", runtime_.Address());
  absl::Status s = runtime_.EnsureNamespace(options_.ns, {{kNamespaceLabel, "true"}});
  if (!s.ok()) return s;
  s = secrets_.Init();
  if (!s.ok()) return s;
  // Per-container files live here, copies of secrets among them: root only.
  const std::string run = options_.state_dir + "/run";
  if ((::mkdir(run.c_str(), 0700) != 0 && errno != EEXIST) || ::chmod(run.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("prepare ", run, ": ", std::strerror(errno)));
  }
  // Functions restarted here are probed again by the loop until ready.
  std::set<std::string> busy, retry;
  if (!ReconcileOnce(&busy, &retry)) RequestReconcile();
  for (const std::set<std::string>* keys : {&busy, &retry}) {
    for (const std::string& key : *keys) RequestReconcile(key);
  }
  loop_ = std::thread([this] {
    NameThisThread("faasd-reconcile");
    ReconcileLoop();
  });
  events_ = std::thread([this] {
    NameThisThread("faasd-task-exit");
    WatchTaskExits();
  });
  return absl::OkStatus();
}

// A function's task that exits is restarted at once instead of at the next periodic pass, so
// the gateway routes to a dead address for milliseconds, not seconds.
void ContainerdProvider::WatchTaskExits() {
  // Every namespace: which ones hold functions changes at run time, and a pass for an exit
  // elsewhere costs little. An OOM kill is named in the log before its exit is handled.
  const std::vector<std::string> filters{"topic==\"/tasks/exit\"", "topic==\"/tasks/oom\""};
  absl::Duration backoff = absl::Milliseconds(200);
  while (!stopping_.load()) {
    std::unique_ptr<EventStream> stream = runtime_.SubscribeEvents(filters);
    {
      absl::MutexLock l(&events_mu_);
      if (stopping_.load()) break;
      events_stream_ = stream.get();
    }
    absl::Status s = stream->Run([this](const auto& envelope) {
      if (envelope.topic() == "/tasks/oom") NoteOom(envelope);
      // An exit of a replica routing knows concerns that function only, one of a container
      // being removed or gone (its exit may come after the removal) nothing more; anything
      // else (a function routing has not seen yet, another namespace) gets a full pass.
      containerd::api::events::TaskExit exit;
      std::string key;
      if (envelope.topic() == "/tasks/exit" &&
          absl::EndsWith(envelope.event().type_url(), "TaskExit") &&
          exit.ParseFromString(envelope.event().value())) {
        {
          absl::MutexLock l(&mu_);
          if (removing_.count(exit.container_id())) return !stopping_.load();
        }
        key = KeyOfReplica(exit.container_id());
        if (key.empty() &&
            absl::IsNotFound(
                runtime_.GetContainer(Call(envelope.namespace_()), exit.container_id()).status())) {
          return !stopping_.load();
        }
      }
      if (key.empty()) {
        RequestReconcile();
      } else {
        RequestReconcile(key);
      }
      return !stopping_.load();
    });
    {
      absl::MutexLock l(&events_mu_);
      events_stream_ = nullptr;
    }
    if (stopping_.load()) break;
    if (!s.ok()) LogDebug("events: ", s.message(), "; resubscribing");
    absl::MutexLock l(&loop_mu_);
    auto stop = [this]() { return stopping_.load(); };
    loop_mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);  // retry pace; Stop() wakes it
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

void ContainerdProvider::NoteOom(const containerd::api::services::events::v1::Envelope& envelope) {
  // containerd's type URLs carry no "type.googleapis.com/" prefix: Any::UnpackTo refuses them.
  containerd::api::events::TaskOOM oom;
  if (!absl::EndsWith(envelope.event().type_url(), "TaskOOM") ||
      !oom.ParseFromString(envelope.event().value())) {
    return;
  }
  const std::string& id = oom.container_id();
  LogWarning("function replica ", id, " in ", envelope.namespace_(),
             " was killed by the kernel's OOM killer (out of memory: over its limits.memory)");
  absl::MutexLock l(&mu_);
  restarts_[id].oom_killed = true;
}

ContainerdProvider::OomAccount ContainerdProvider::OomKilled(const std::string& ns,
                                                             const std::string& id) {
  // containerd's /tasks/oom alone is not enough: its shim sends it only if the task's cgroup
  // still exists when it handles the kernel's notice, and deleting the exited task removes the
  // cgroup. CI saw an OOM-killed replica reported as "Error" that way. The cgroup's own count
  // of OOM kills (task metrics: v1 memory.oom_control, v2 memory.events) is read first, and
  // when it says so the task is kept a moment for containerd's event, so that whoever else
  // follows containerd's events learns of the kill too.
  uint64_t kills = 0;
  absl::StatusOr<std::vector<containerd::TaskMetrics>> m =
      runtime_.TaskMetrics(Call(ns, absl::Seconds(5)), {id});
  if (m.ok() && !m->empty()) {
    kills = m->front().oom_kills;
  } else {
    LogDebug("reconcile: no task metrics of exited replica ", id, " (",
             m.ok() ? "none returned" : m.status().message(), "): OOM kills known by event only");
  }
  absl::MutexLock l(&mu_);
  // Looked up afresh each time: the wait releases mu_.
  auto noted = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = restarts_.find(id);
    return it != restarts_.end() && it->second.oom_killed;
  };
  if (kills > 0 && !mu_.AwaitWithTimeout(absl::Condition(&noted), kOomEventWait)) {
    LogWarning("function replica ", id, " in ", ns, " had ", kills,
               " OOM kill(s) in its cgroup that containerd sent no /tasks/oom for within ",
               absl::FormatDuration(kOomEventWait));
  }
  auto it = restarts_.find(id);
  const bool event = it != restarts_.end() && std::exchange(it->second.oom_killed, false);
  return OomAccount{event, kills};
}

void ContainerdProvider::Stop() {
  if (stopping_.exchange(true)) return;
  {
    absl::MutexLock l(&events_mu_);
    if (events_stream_ != nullptr) events_stream_->Cancel();
  }
  RequestReconcile();  // wakes the loop, which then sees stopping_
  if (loop_.joinable()) loop_.join();
  if (events_.joinable()) events_.join();
  // Background jobs check stopping_ between steps; AwaitReady's waiters see it too.
  std::vector<Job> jobs;
  {
    absl::MutexLock l(&mu_);
    jobs.swap(jobs_);
  }
  for (Job& j : jobs) j.thread.join();
}

void ContainerdProvider::RequestReconcile() {
  absl::MutexLock l(&loop_mu_);
  reconcile_requested_ = true;
}

void ContainerdProvider::RequestReconcile(const std::string& key) {
  absl::MutexLock l(&loop_mu_);
  reconcile_keys_.insert(key);
}

std::string ContainerdProvider::KeyOfReplica(const std::string& container_id) const {
  absl::MutexLock l(&mu_);
  for (const auto& [key, route] : routes_) {
    for (const Replica& r : route.replicas) {
      if (r.container_id == container_id) return key;
    }
  }
  return "";
}

void ContainerdProvider::ReconcileLoop() {
  // A pass that had to skip a function (a deploy held it, and its task may have exited
  // meanwhile) or left one not ready yet (just restarted) comes back soon for that function,
  // then less and less often, rather than only at the next interval; one containerd did not
  // answer is tried again as a whole.
  absl::Duration next = options_.reconcile_interval;
  bool backing_off = false;
  const absl::Duration first_retry = std::min(options_.reconcile_interval, absl::Milliseconds(100));
  // A replica left not ready is probed at least this often, however long the interval (an
  // operator's, or the tests' hour).
  const absl::Duration last_retry = std::min(options_.reconcile_interval, kMaxRetryGap);
  std::set<std::string> busy;   // keys whose function was locked: tried again soon
  std::set<std::string> retry;  // keys left not ready: tried again, backing off
  absl::Time last_full = absl::Now();
  while (!stopping_.load()) {
    bool full = true;
    std::set<std::string> keys;
    {
      absl::MutexLock l(&loop_mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_mu_) {
        return reconcile_requested_ || !reconcile_keys_.empty() || stopping_.load();
      };
      // Woken for some functions only (or to retry some): those. Woken for all, by the
      // interval, for the retry of a pass containerd failed, or at the end of a back-off: all.
      const bool woken = loop_mu_.AwaitWithTimeout(absl::Condition(&wake), next);
      full = reconcile_requested_ || (!woken && busy.empty() && retry.empty()) ||
             absl::Now() - last_full >= options_.reconcile_interval;
      reconcile_requested_ = false;
      keys.swap(reconcile_keys_);
    }
    if (stopping_.load()) break;
    // Keys asked for since the last pass (a deploy left a replica starting, say) start their
    // retries afresh, not at the back-off other keys had reached.
    const bool requested = !keys.empty();
    keys.insert(busy.begin(), busy.end());
    keys.insert(retry.begin(), retry.end());
    busy.clear();
    retry.clear();
    if (full) last_full = absl::Now();
    const bool answered = full ? ReconcileOnce(&busy, &retry) : ReconcileKeys(keys, &busy, &retry);
    const bool complete = answered && retry.empty();
    if (complete) {
      next = options_.reconcile_interval;
    } else {
      next = backing_off && !requested ? std::min(next * 2, last_retry) : first_retry;
    }
    backing_off = !complete;
    if (!busy.empty()) next = std::min(next, absl::Milliseconds(20));
    // A crashed replica waiting out its back-off is restarted when the back-off ends, not at
    // whatever pass comes next.
    absl::MutexLock l(&mu_);
    const absl::Time now = clock_.Now();
    for (const auto& [id, r] : restarts_) {
      if (r.not_before > now) next = std::min(next, r.not_before - now);
    }
    // So is a task paused at zero when its time is up, whatever the interval.
    for (const auto& [id, at] : paused_) {
      next = std::min(next, std::max(at + options_.paused_ttl - now, absl::Milliseconds(100)));
    }
  }
}

bool ContainerdProvider::ReconcileOnce(std::set<std::string>* busy, std::set<std::string>* retry) {
  absl::StatusOr<std::vector<std::string>> namespaces = FunctionNamespaces();
  if (!namespaces.ok()) {
    LogWarning("reconcile: ", namespaces.status().message());
    return false;
  }
  std::set<std::string> seen;
  std::set<std::string> listed;  // container ids
  uint64_t listed_after = 0;     // routes set after this were set after the listing
  {
    absl::MutexLock l(&mu_);
    listed_after = route_seq_;
  }
  for (const std::string& ns : *namespaces) {
    const uint64_t listed_at = OpCounter();
    absl::StatusOr<std::vector<Found>> found = FindFunctions(ns, "");
    absl::StatusOr<std::vector<containerd::api::v1::types::Process>> tasks =
        found.ok()
            ? runtime_.ListTasks(Call(ns))
            : absl::StatusOr<std::vector<containerd::api::v1::types::Process>>(found.status());
    if (!tasks.ok()) {
      LogWarning("reconcile ", ns, ": ", tasks.status().message());
      return false;  // routes stay as they are until containerd answers
    }
    std::map<std::string, containerd::api::v1::types::Process> task_by_id;
    for (auto& t : *tasks) task_by_id[t.id().empty() ? t.container_id() : t.id()] = t;
    for (const auto& f : *found) {
      const std::string key = FunctionKey(f.name, f.ns);
      seen.insert(key);
      for (const auto* group : {&f.current, &f.stale}) {
        for (const Container& c : *group) listed.insert(c.id());
      }
      std::shared_ptr<absl::Mutex> op = OpLock(key, /*noted=*/false);
      if (!op->TryLock()) {  // a deploy/update/remove/scale is at work on it
        busy->insert(key);
        continue;
      }
      // A long pass (it stops tasks one by one) reaches some functions seconds after its
      // listing: one with an operation since (a remove, scale, update or wake) is left to a
      // pass of its own, which lists it afresh under the lock, rather than brought back to what
      // the listing said (a task restarted at zero, replicas of a function just removed).
      if (OpSince(key, listed_at)) {
        op->Unlock();
        busy->insert(key);
        continue;
      }
      if (!ReconcileFunction(f, task_by_id)) retry->insert(key);
      op->Unlock();
    }
  }
  // Functions that vanished from containerd behind our back leave routing too (not those
  // deployed since the listing).
  {
    absl::MutexLock l(&mu_);
    bool changed = false;
    for (auto it = routes_.begin(); it != routes_.end();) {
      if (seen.count(it->first) == 0 && it->second.set_at <= listed_after) {
        it = routes_.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    if (changed) Publish();
  }
  {
    absl::MutexLock l(&mu_);  // namespaces no longer holding functions leave the index
    const std::set<std::string> current(namespaces->begin(), namespaces->end());
    for (auto it = index_.begin(); it != index_.end();) {
      it = current.count(it->first) ? std::next(it) : index_.erase(it);
    }
    for (auto it = indexed_ns_.begin(); it != indexed_ns_.end();) {
      it = current.count(*it) ? std::next(it) : indexed_ns_.erase(it);
    }
  }
  {
    absl::MutexLock l(&mu_);  // paused tasks whose container went behind our back
    for (auto it = paused_.begin(); it != paused_.end();) {
      it = listed.count(it->first) ? std::next(it) : paused_.erase(it);
    }
  }
  ReclaimOrphans(listed);
  return true;
}

bool ContainerdProvider::ReconcileKeys(const std::set<std::string>& keys,
                                       std::set<std::string>* busy, std::set<std::string>* retry) {
  for (const std::string& key : keys) {
    // The lock first: a function being deployed is not routed until its deploy is done.
    std::shared_ptr<absl::Mutex> op = OpLock(key, /*noted=*/false);
    if (!op->TryLock()) {  // a deploy/update/remove/scale is at work on it
      busy->insert(key);
      continue;
    }
    std::string ns, name;
    {
      absl::MutexLock l(&mu_);
      auto it = routes_.find(key);
      if (it == routes_.end()) {  // removed meanwhile, or not routed yet: a full pass knows
        RequestReconcile();
        op->Unlock();
        continue;
      }
      ns = it->second.ns;
      name = it->second.name;
    }
    absl::StatusOr<std::vector<Found>> found = FindFunctions(ns, name);
    if (!found.ok()) {
      LogWarning("reconcile ", key, ": ", found.status().message());
      op->Unlock();
      return false;  // routes stay as they are until containerd answers
    }
    if (found->empty()) {  // gone behind our back: leaves routing, as in a full pass
      SetRoute(key, std::nullopt);
      op->Unlock();
      continue;
    }
    std::map<std::string, containerd::api::v1::types::Process> tasks;
    for (const Found& f : *found) {
      for (const auto* list : {&f.current, &f.stale}) {
        for (const Container& c : *list) {
          absl::StatusOr<containerd::api::v1::types::Process> t =
              runtime_.GetTask(Call(ns), c.id());
          if (t.ok()) tasks[c.id()] = *std::move(t);
        }
      }
    }
    for (const Found& f : *found) {
      if (!ReconcileFunction(f, tasks)) retry->insert(key);
    }
    op->Unlock();
  }
  return true;
}

bool ContainerdProvider::ReconcileFunction(
    const Found& f, const std::map<std::string, containerd::api::v1::types::Process>& tasks) {
  using containerd::api::v1::types::RUNNING;
  // Older generations left by an update that did not finish (the daemon stopped): retired once
  // the newest generation serves.
  std::map<std::string, Replica> known;  // what routing knows, by container id
  {
    absl::MutexLock l(&mu_);
    auto it = routes_.find(FunctionKey(f.name, f.ns));
    if (it != routes_.end()) {
      for (const Replica& r : it->second.replicas) known[r.container_id] = r;
    }
  }
  const absl::Time now = clock_.Now();
  std::vector<ReplicaState> states;
  for (const Container& c : f.current) {
    ReplicaState st;
    st.id = c.id();
    auto t = tasks.find(c.id());
    st.has_task = t != tasks.end();
    st.running = st.has_task && t->second.status() == RUNNING;
    st.paused = st.has_task && t->second.status() == containerd::api::v1::types::PAUSED;
    auto k = known.find(c.id());
    st.ready = st.running && k != known.end() && k->second.ready;
    absl::MutexLock l(&mu_);
    auto r = restarts_.find(c.id());
    st.backing_off =
        !st.running && !st.paused && r != restarts_.end() && r->second.not_before > now;
    st.may_pause = f.desired == 0 && MayPause(c.id(), st.paused, now);
    states.push_back(st);
  }
  ReplicaPlan plan = PlanReplicas(f.desired, states);

  // The list was taken before the lock: a deploy that failed meanwhile has deleted its
  // container, which must not be "restarted" (that would attach a network nobody releases).
  // Checked only before acting, so a pass over healthy functions costs no extra call.
  std::set<std::string> gone;
  auto deployed = [&](const std::string& id) {
    if (gone.count(id)) return false;
    if (StillDeployed(f.ns, id)) return true;
    gone.insert(id);
    return false;
  };
  for (const std::string& id : plan.retire) {
    absl::StatusOr<Container> c = runtime_.GetContainer(Call(f.ns), id);
    if (c.ok()) {
      LogInfo("reconcile ", f.name, ": retiring replica ", id, " (", f.desired, " wanted)");
      Retire(f.ns, *c);
    }
    gone.insert(id);
  }
  for (const std::string& id : plan.stop) {
    if (deployed(id)) StopTask(f.ns, id);
  }
  for (const std::string& id : plan.pause) {
    if (deployed(id)) PauseTask(f.ns, id);
  }
  std::map<std::string, Replica> started;
  for (const std::string& id : plan.resume) {
    if (!deployed(id)) continue;
    absl::StatusOr<Replica> r = ResumeTask(f.ns, id);
    if (r.ok()) {
      started[id] = *r;
    } else {
      LogWarning("reconcile ", f.name, ": resume ", id, ": ", r.status().message());
      StopTask(f.ns, id);  // the next pass starts it afresh
    }
  }
  for (const std::string& id : plan.start) {
    if (!deployed(id)) continue;
    auto t = tasks.find(id);
    if (t != tasks.end()) {
      const OomAccount account = OomKilled(f.ns, id);
      const bool oom = account.event || account.kills > 0;
      {
        absl::MutexLock l(&mu_);
        Restarts& r = restarts_[id];
        // restarts_in_a_row is set below, with the restart this exit leads to.
        const absl::Time at = containerd::ToTime(t->second.exited_at());
        r.last_exit =
            ReplicaExit{id, t->second.exit_status(), oom, at != absl::UnixEpoch() ? at : now};
      }
      LogWarning("reconcile ", f.name, ": replica ", id, " exited with status ",
                 t->second.exit_status(),
                 !oom ? ""
                 : account.kills == 0
                     ? " (OOM-killed)"
                     : absl::StrCat(" (OOM-killed: ", account.kills, " kill(s) in its cgroup",
                                    account.event ? ")" : ", no /tasks/oom from containerd)"));
      (void)runtime_.DeleteTask(Call(f.ns), id);
      absl::MutexLock l(&mu_);
      restarts_[id].oom_killed = false;  // one in flight for the task just deleted is not news
    }
    int consecutive = 0;
    {
      absl::MutexLock l(&mu_);
      Restarts& r = restarts_[id];
      if (r.last_start != absl::Time() && now - r.last_start > kBackoffReset) r.consecutive = 0;
      consecutive = ++r.consecutive;
      if (r.last_exit) r.last_exit->restarts_in_a_row = consecutive;
      r.last_start = now;
      r.not_before = now + RestartDelay(consecutive);
    }
    absl::StatusOr<Replica> r = StartTask(f.ns, id, f.name);
    if (r.ok()) {
      LogInfo("reconcile: restarted ", f.name, " (", id, ") at ", r->ip,
              consecutive > 1 ? absl::StrCat(", restart ", consecutive, " in a row") : "");
      started[id] = *r;
    } else {
      LogWarning("reconcile: restart ", f.name, " (", id, "): ", r.status().message());
    }
  }
  std::vector<Replica> replicas;
  for (const ReplicaState& st : states) {
    if (gone.count(st.id)) continue;
    if (f.desired == 0) {  // stopped or paused: routed nowhere, woken by a request
      // A kept container without a task holds no network (one left by an update at zero, or
      // by an older daemon, goes here).
      if (!st.has_task && network_.LookupIp(st.id)) ReleaseNetwork(st.id);
      replicas.push_back(Replica{st.id, "", false});
      continue;
    }
    Replica r{st.id, "", false};
    if (auto s = started.find(st.id); s != started.end()) {
      r = s->second;
    } else if (st.running) {
      std::optional<std::string> ip = network_.LookupIp(st.id);
      if (!ip && deployed(st.id)) {
        // The task runs in our pinned namespace; a task from before namespaces were pinned
        // runs in its own.
        auto t = tasks.find(st.id);
        const std::string netns = network_.IsNetns(NetnsPath(st.id))
                                      ? NetnsPath(st.id)
                                      : absl::StrCat("/proc/", t->second.pid(), "/ns/net");
        absl::StatusOr<std::string> attached = network_.Attach(st.id, netns);
        if (attached.ok())
          ip = *attached;
        else
          LogWarning("reconcile ", f.name, ": ", attached.status().message());
      }
      if (ip) r.ip = *ip;
    }
    if (gone.count(st.id)) continue;
    r.ready =
        !r.ip.empty() && (st.ready || (f.desired > 0 && Probe(r.ip, ReadyPath(f.deployment))));
    replicas.push_back(r);
  }
  for (uint64_t i = 0; i < plan.create; ++i) {
    absl::StatusOr<Replica> r = CreateReplica(f.deployment, f.generation, f.desired,
                                              image::PullPolicy::kIfNotPresent, /*start=*/true);
    if (!r.ok()) {
      LogWarning("reconcile ", f.name, ": new replica: ", r.status().message());
      break;
    }
    LogInfo("reconcile ", f.name, ": new replica ", r->container_id, " at ", r->ip);
    r->ready = Probe(r->ip, ReadyPath(f.deployment));
    replicas.push_back(*r);
  }
  bool all_ready = true;
  int ready_count = 0;
  for (const Replica& r : replicas) {
    all_ready = all_ready && r.ready;
    ready_count += r.ready ? 1 : 0;
  }
  if (f.desired == 0) all_ready = true;
  // An update that did not finish: the old generation serves until the new one does.
  if (!f.stale.empty() && ready_count > 0) {
    for (const Container& c : f.stale) Retire(f.ns, c);
  }
  UpdateRoute(FunctionKey(f.name, f.ns),
              MakeRoute(f.deployment, f.desired, f.generation, replicas, f.created));
  return all_ready && replicas.size() == (f.desired == 0 ? replicas.size() : f.desired);
}

bool ContainerdProvider::StillDeployed(const std::string& ns, const std::string& id) {
  absl::StatusOr<Container> c = runtime_.GetContainer(Call(ns), id);
  if (!c.ok()) return false;
  auto st = c->labels().find(kStateLabel);
  return st == c->labels().end() || st->second != kStateRemoving;
}

namespace {
std::set<std::string> DirEntries(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* de = ::readdir(d)) {
      if (de->d_name[0] != '.') names.insert(de->d_name);
    }
    ::closedir(d);
  }
  return names;
}
}  // namespace

// Addresses, network namespaces, CNI cache entries, writable snapshots and run directories
// whose container is gone: left by a daemon that died mid-deploy (between the snapshot and
// the container, say), or by any path that failed to release them. A deploy makes the run
// directory before the snapshot and every path removes it after, so a run directory marks a
// snapshot that may be left (one nothing marks is unreferenced, and containerd's GC takes it
// once no lease holds it). Each is checked under its function's lock, so a deploy still in
// progress (network attached, snapshot prepared, container not yet created) is never touched.
void ContainerdProvider::ReclaimOrphans(const std::set<std::string>& listed) {
  std::set<std::string> networks = DirEntries(absl::StrCat(options_.state_dir, "/netns"));
  for (const std::string& id : network_.AttachedContainers()) networks.insert(id);
  const std::set<std::string> run_dirs = DirEntries(absl::StrCat(options_.state_dir, "/run"));
  std::set<std::string> ids = networks;
  ids.insert(run_dirs.begin(), run_dirs.end());
  for (const std::string& id : listed) ids.erase(id);
  if (ids.empty()) return;
  // Containers of every containerd namespace count: a namespace may have lost its label.
  absl::StatusOr<std::vector<containerd::api::services::namespaces::v1::Namespace>> all_ns =
      runtime_.ListNamespaces();
  absl::StatusOr<std::vector<std::string>> function_ns = FunctionNamespaces();
  if (!all_ns.ok() || !function_ns.ok()) return;
  auto exists_anywhere = [&](const std::string& id) -> std::optional<bool> {
    for (const auto& n : *all_ns) {
      absl::StatusOr<Container> c = runtime_.GetContainer(Call(n.name()), id);
      if (c.ok()) return true;
      if (c.status().code() != absl::StatusCode::kNotFound) return std::nullopt;
    }
    return false;
  };
  for (const std::string& id : ids) {
    {
      absl::MutexLock l(&mu_);
      if (removing_.count(id)) continue;
    }
    // Container ids are "<function>-<8 hex>"; a deploy of that function, in any namespace,
    // holds its lock from before the network is attached until the container exists.
    const size_t dash = id.rfind('-');
    if (dash == std::string::npos || dash == 0) continue;
    std::vector<std::shared_ptr<absl::Mutex>> held;
    bool busy = false;
    for (const std::string& ns : *function_ns) {
      std::shared_ptr<absl::Mutex> op = OpLock(FunctionKey(id.substr(0, dash), ns));
      if (!op->TryLock()) {
        busy = true;
        break;
      }
      held.push_back(std::move(op));
    }
    if (!busy && exists_anywhere(id) == false) {
      std::vector<std::string> what;
      if (networks.count(id)) {
        ReleaseNetwork(id);
        what.push_back("network");
      }
      if (run_dirs.count(id)) {
        for (const std::string& ns : *function_ns) {  // the snapshot's namespace is not known
          absl::Status s = runtime_.RemoveSnapshot(Call(ns), id);
          if (s.ok()) {
            what.push_back("snapshot");
          } else if (s.code() != absl::StatusCode::kNotFound) {
            LogWarning("reconcile: snapshot ", id, ": ", s.message());
          }
        }
        RemoveRunDir(id);
        what.push_back("run directory");
      }
      LogInfo("reconcile: released the ", absl::StrJoin(what, ", "), " of ", id,
              ", which has no container");
    }
    for (auto& op : held) op->Unlock();
  }
}

}  // namespace faasd::provider
