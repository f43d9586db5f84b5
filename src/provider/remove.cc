// Remove and scale: out of routing at once, containers stopped in the background.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"

namespace faasd::provider {

using containerd::api::services::containers::v1::Container;
using namespace internal;

void ContainerdProvider::Retire(const std::string& ns, const Container& c) {
  // The label first: should the daemon stop before the removal finishes, the next start sees
  // it and finishes the job.
  containerd::Labels labels(c.labels().begin(), c.labels().end());
  labels[kStateLabel] = kStateRemoving;
  absl::Status s = runtime_.SetContainerLabels(Call(ns), c.id(), labels);
  if (!s.ok()) LogWarning("remove ", c.id(), ": ", s.message());
  ScheduleRemoval(ns, c.id());
}

void ContainerdProvider::RetireAll(const Found& f) {
  for (const auto& c : f.current) Retire(f.ns, c);
  for (const auto& c : f.stale) Retire(f.ns, c);
}

absl::Status ContainerdProvider::Remove(const std::string& name, const std::string& ns) {
  absl::Status s = ValidateName("function name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> resolved = ResolveNamespace(ns);
  if (!resolved.ok()) return resolved.status();
  const std::string key = FunctionKey(name, *resolved);
  OpGuard guard(*this, key);
  absl::StatusOr<Found> found = FindDeployed(*resolved, name);
  if (!found.ok()) return found.status();
  SetRoute(key, std::nullopt);
  RetireAll(*found);
  LogInfo("removed ", name, " from routing; stopping its containers in the background");
  return absl::OkStatus();
}

void ContainerdProvider::RunInBackground(std::function<void()> job) {
  absl::MutexLock l(&mu_);
  if (stopping_.load()) return;
  ReapJobsLocked();  // threads that finished: their stacks must not pile up
  auto done = std::make_shared<std::atomic<bool>>(false);
  jobs_.push_back(Job{std::thread([this, job = std::move(job), done] {
                        NameThisThread("faasd-job");
                        job();
                        // The jobs that finished before this one are joined by it, so that
                        // after a burst (a remove of many replicas) at most one exited thread
                        // keeps its stack until the next job, however long that takes.
                        absl::MutexLock l(&mu_);
                        ReapJobsLocked();
                        done->store(true);
                      }),
                      done});
}

void ContainerdProvider::ReapJobsLocked() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->done->load()) {
      it->thread.join();  // past its job and its last lock: returns at once
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t ContainerdProvider::BackgroundThreads() const {
  absl::MutexLock l(&mu_);
  return jobs_.size();
}

void ContainerdProvider::ScheduleRemoval(const std::string& ns, const std::string& id) {
  {
    absl::MutexLock l(&mu_);
    if (stopping_.load() || !removing_.insert(id).second) return;
    restarts_.erase(id);
  }
  RunInBackground([this, ns, id] {
    StopAndRemove(ns, id);
    absl::MutexLock l(&mu_);
    removing_.erase(id);
  });
}

bool ContainerdProvider::WaitExit(const std::string& ns, const std::string& id,
                                  absl::Duration max) {
  // In slices, so a daemon told to stop does not wait out a function's grace period.
  const absl::Time deadline = absl::Now() + max;
  while (!stopping_.load()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    absl::StatusOr<uint32_t> exited =
        runtime_.WaitTask(Call(ns, std::min(left, absl::Milliseconds(250))), id);
    if (exited.ok() || exited.status().code() == absl::StatusCode::kNotFound) return true;
    if (exited.status().code() != absl::StatusCode::kDeadlineExceeded) return false;
  }
  return false;
}

void ContainerdProvider::StopAndRemove(const std::string& ns, const std::string& id) {
  // Should the daemon stop meanwhile, the container keeps its "removing" label and the next
  // start finishes the job.
  absl::StatusOr<containerd::api::v1::types::Process> task = runtime_.GetTask(Call(ns), id);
  if (task.ok()) {
    if (task->status() == containerd::api::v1::types::RUNNING ||
        task->status() == containerd::api::v1::types::PAUSED ||
        task->status() == containerd::api::v1::types::CREATED) {
      (void)SignalTask(ns, id, SIGTERM, false,
                       task->status() == containerd::api::v1::types::PAUSED);
      if (!WaitExit(ns, id, options_.stop_grace)) {
        if (stopping_.load()) return;
        (void)runtime_.KillTask(Call(ns), id, SIGKILL, true);
        (void)WaitExit(ns, id, absl::Seconds(10));
      }
    }
    if (stopping_.load()) return;
    absl::Status s = runtime_.DeleteTask(Call(ns), id);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound)
      LogWarning("remove ", id, ": ", s.message());
  }
  if (stopping_.load()) return;
  ReleaseNetwork(id);
  absl::Status s = runtime_.DeleteContainer(Call(ns), id);
  if (s.ok() || s.code() == absl::StatusCode::kNotFound) UnindexContainer(ns, id);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound)
    LogWarning("remove ", id, ": ", s.message());
  s = runtime_.RemoveSnapshot(Call(ns), id);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound)
    LogWarning("remove ", id, ": ", s.message());
  RemoveRunDir(id);
  LogInfo("container ", id, " removed");
}

void ContainerdProvider::RemoveRunDir(const std::string& id) {
  const std::string run_dir = absl::StrCat(options_.state_dir, "/run/", id);
  const std::string secrets = SecretsDir(id);
  if (DIR* d = ::opendir(secrets.c_str())) {
    std::vector<std::string> names;
    while (struct dirent* de = ::readdir(d)) {
      if (de->d_name[0] != '.') names.push_back(de->d_name);
    }
    ::closedir(d);
    for (const std::string& n : names) ::unlink(absl::StrCat(secrets, "/", n).c_str());
    ::rmdir(secrets.c_str());
  }
  ::unlink((run_dir + "/hosts").c_str());
  ::unlink((run_dir + "/resolv.conf").c_str());
  ::rmdir(run_dir.c_str());
}

bool ContainerdProvider::WaitForRemovals(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock l(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return removing_.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
}

}  // namespace faasd::provider
