// Hold-and-wake for the event loops: a request for a known function with no ready replica
// (scaled to zero, or its only replica being replaced) must wait without blocking its loop.
// RoutingTable::AwaitReady blocks, so one helper thread per waiting function calls it (which
// also starts the function from zero, once) and hands the snapshot to every request waiting on
// that function, on the request's own loop. Requests whose deadline passes get null.
// A helper that has woken its function's last waiter returns, and is joined by the next Await
// (of any function): threads live only while someone waits. Thread-safe; Stop() joins the
// helpers (they wait in slices of at most a second).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "provider/provider.h"

namespace faasd::gateway {

class ReplicaWaiter {
 public:
  using Snapshot = std::shared_ptr<const provider::RoutingSnapshot>;
  using Callback = std::function<void(Snapshot)>;

  explicit ReplicaWaiter(provider::RoutingTable& routes) : routes_(routes) {}
  ~ReplicaWaiter() { Stop(); }

  // Calls `done` on `executor` with a snapshot in which `key` has a ready endpoint, or with
  // null once `deadline` passes, the function is gone, or the waiter stops.
  void Await(const std::string& key, absl::Time deadline, boost::asio::any_io_executor executor,
             Callback done);
  void Stop();
  // Helper threads not yet joined: those waiting, and those that returned since the last Await.
  size_t helpers() const;

 private:
  struct Waiter {
    absl::Time deadline;
    boost::asio::any_io_executor executor;
    Callback done;
  };
  void Wait(const std::string& key);
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  provider::RoutingTable& routes_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::vector<Waiter>> waiting_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::thread> threads_ ABSL_GUARDED_BY(mu_);  // one per waited key
  std::vector<std::string> returned_ ABSL_GUARDED_BY(mu_);  // keys whose helper returned
};

}  // namespace faasd::gateway
