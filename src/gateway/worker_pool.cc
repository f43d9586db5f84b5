#include "gateway/worker_pool.h"

#include "base/thread_name.h"

namespace faasd::gateway {

ElasticWorkerPool::ElasticWorkerPool(size_t min, size_t max, absl::Duration idle, const char* name)
    : min_(min), max_(max < min ? min : max), name_(name), idle_timeout_(idle) {
  absl::MutexLock l(&mu_);
  for (size_t i = 0; i < min_; ++i) {
    std::thread t([this] { Work(); });
    threads_.emplace(t.get_id(), std::move(t));
  }
}

ElasticWorkerPool::~ElasticWorkerPool() { shutdown(); }

size_t ElasticWorkerPool::threads() const {
  absl::MutexLock l(&mu_);
  return threads_.size() - exited_.size();
}

size_t ElasticWorkerPool::unjoined() const {
  absl::MutexLock l(&mu_);
  return exited_.size();
}

void ElasticWorkerPool::ReapLocked() {
  for (const auto& id : exited_) {
    auto it = threads_.find(id);
    if (it == threads_.end()) continue;
    it->second.join();  // it has left Work(); join returns at once
    threads_.erase(it);
  }
  exited_.clear();
}

void ElasticWorkerPool::enqueue(std::function<void()> fn) {
  absl::MutexLock l(&mu_);
  if (stopping_) return;
  jobs_.push_back(std::move(fn));
  ReapLocked();
  if (idle_ < jobs_.size() && threads_.size() < max_) {
    std::thread t([this] { Work(); });
    threads_.emplace(t.get_id(), std::move(t));
  }
}

void ElasticWorkerPool::Work() {
  NameThisThread(name_);
  mu_.Lock();
  while (true) {
    ++idle_;
    auto has_work = [this]()
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !jobs_.empty() || stopping_; };
    bool woke = mu_.AwaitWithTimeout(absl::Condition(&has_work), idle_timeout_);
    --idle_;
    if (!jobs_.empty()) {
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      mu_.Unlock();
      job();
      mu_.Lock();
      continue;
    }
    if (stopping_) break;
    if (!woke && threads_.size() - exited_.size() > min_) {
      // Those that left before it are joined now, not at the next enqueue (which may not come
      // for hours): an exited thread's stack stays mapped, and partly resident, until joined.
      ReapLocked();
      exited_.push_back(std::this_thread::get_id());
      break;
    }
  }
  mu_.Unlock();
}

void ElasticWorkerPool::shutdown() {
  std::map<std::thread::id, std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
    threads.swap(threads_);
    exited_.clear();
  }
  for (auto& [id, t] : threads) t.join();
}

}  // namespace faasd::gateway
