#include "gateway/replica_waiter.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "base/thread_name.h"
#include "boost/asio/post.hpp"

namespace faasd::gateway {

void ReplicaWaiter::Await(const std::string& key, absl::Time deadline,
                          boost::asio::any_io_executor executor, Callback done) {
  absl::MutexLock l(&mu_);
  if (stopping_) {
    boost::asio::post(executor, [done = std::move(done)] { done(nullptr); });
    return;
  }
  auto [it, first] = waiting_.try_emplace(key);
  it->second.push_back(Waiter{deadline, std::move(executor), std::move(done)});
  if (!first) return;
  // This key's previous helper, if any, is among those: without a waiter left it has returned
  // or is returning.
  ReapLocked();
  threads_[key] = std::thread([this, key] {
    NameThisThread("faasd-waiter");
    Wait(key);
  });
}

void ReplicaWaiter::ReapLocked() {
  for (const std::string& key : returned_) {
    auto it = threads_.find(key);
    if (it == threads_.end()) continue;
    it->second.join();  // past its last use of mu_: returns at once
    threads_.erase(it);
  }
  returned_.clear();
}

size_t ReplicaWaiter::helpers() const {
  absl::MutexLock l(&mu_);
  return threads_.size();
}

void ReplicaWaiter::Wait(const std::string& key) {
  for (;;) {
    absl::Time until;
    {
      absl::MutexLock l(&mu_);
      auto& list = waiting_[key];
      until = list.front().deadline;
      for (const Waiter& w : list) until = std::min(until, w.deadline);
      if (stopping_) until = absl::Now();
    }
    // Slices keep Stop() prompt; AwaitReady starts a function from zero only once however
    // often it is called.
    Snapshot snap = routes_.AwaitReady(key, std::min(until, absl::Now() + absl::Seconds(1)));
    const bool gone = snap == nullptr && routes_.Snapshot()->functions.count(key) == 0;
    std::vector<Waiter> wake;
    {
      absl::MutexLock l(&mu_);
      auto it = waiting_.find(key);
      const absl::Time now = absl::Now();
      std::vector<Waiter> keep;
      for (Waiter& w : it->second) {
        (snap != nullptr || gone || stopping_ || w.deadline <= now ? wake : keep)
            .push_back(std::move(w));
      }
      it->second = std::move(keep);
      const bool done = it->second.empty();
      if (done) {
        waiting_.erase(it);
        if (!stopping_) returned_.push_back(key);  // Stop() joins it otherwise
      }
      for (Waiter& w : wake) {
        boost::asio::post(w.executor, [cb = std::move(w.done), snap] { cb(snap); });
      }
      if (done) return;
    }
  }
}

void ReplicaWaiter::Stop() {
  std::map<std::string, std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  for (auto& [key, t] : threads) t.join();
}

}  // namespace faasd::gateway
