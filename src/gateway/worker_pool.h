// The gateway's connection workers: httplib runs each accepted connection on one thread for as
// long as it is kept alive, so the pool must be able to hold a few hundred threads under load,
// yet an idle appliance on a small box should not keep them. This pool starts `min` threads,
// grows up to `max` when every thread is busy, and lets threads above `min` exit after `idle`
// without work. Thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace faasd::gateway {

class ElasticWorkerPool final : public httplib::TaskQueue {
 public:
  // `name`: its threads' name (base/thread_name.h); a string literal, or one that outlives the
  // pool.
  ElasticWorkerPool(size_t min, size_t max, absl::Duration idle, const char* name = "faasd-worker");
  ~ElasticWorkerPool() override;

  // Runs `fn` on an idle thread, a new one if all are busy and fewer than `max` exist, or
  // queues it for the next free thread.
  void enqueue(std::function<void()> fn) override;
  // Runs the queued work, then joins every thread.
  void shutdown() override;

  size_t threads() const;
  // Threads that exited idle and are not joined yet: at most one (the last to exit).
  size_t unjoined() const;

 private:
  void Work();
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t min_, max_;
  const char* const name_;
  const absl::Duration idle_timeout_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::thread::id, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> exited_ ABSL_GUARDED_BY(mu_);  // to join
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace faasd::gateway
