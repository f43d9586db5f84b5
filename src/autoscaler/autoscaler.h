// The built-in autoscaler: a loop that, every `interval`, reads each function's labels and
// replicas from the provider and what the invoke path counted for it (LoadSource), asks the
// function's FunctionScaler (policy.h: the arithmetic) what it should run, and calls the
// provider's Scale when that differs. Each change is logged at info with the load that caused
// it. Functions opt in by label (policy.h) or all at once (AutoscalerOptions::all).
//
// The loop never touches the invoke path: it reads counters the path keeps as atomics, and a
// scale from zero stays the path's job (the provider's wake on the first request).
//
// While no function is managed the loop sleeps: a pass that finds none ends its thread, and
// Wake() (called when a function is deployed or updated, since its labels may now ask for
// scaling) starts it again. An appliance without autoscaled functions keeps no thread for it
// and does not list its functions every interval.
//
// Thread-safety: Start(), Stop() from one owning thread; Wake() and Desired() from any thread;
// Tick() only when the loop is not started (tests). The provider, load source and clock must
// outlive the Autoscaler.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autoscaler/policy.h"
#include "provider/clock.h"
#include "provider/provider.h"

namespace faasd::autoscaler {

// What the invoke path counted for one function, keyed "name.namespace".
struct InvocationLoad {
  uint64_t started = 0;    // requests started since the daemon began
  uint64_t in_flight = 0;  // requests being served now
};

// Thread-safe. Read once per tick, so one pass over the counters serves every function.
class LoadSource {
 public:
  virtual ~LoadSource() = default;
  // Every function counted so far; one never invoked may be absent (it counts as zeros).
  virtual std::map<std::string, InvocationLoad> Loads() const = 0;
};

// Work for a function that waits outside the invoke path (queued async calls): while Busy() is
// true the function is not idle and is never scaled to zero. Thread-safe.
class IdleVeto {
 public:
  virtual ~IdleVeto() = default;
  virtual bool Busy(const std::string& key) const = 0;
};

struct AutoscalerOptions {
  absl::Duration interval = absl::Seconds(2);
  absl::Duration rate_window = absl::Seconds(30);  // the rps rate looks this far back
  bool all = false;  // manage functions without an autoscaler label too (--autoscale-all)
};

class Autoscaler {
 public:
  Autoscaler(AutoscalerOptions options, provider::FunctionProvider& provider,
             const LoadSource& load, const provider::Clock& clock);
  ~Autoscaler();  // stops if running
  Autoscaler(const Autoscaler&) = delete;
  Autoscaler& operator=(const Autoscaler&) = delete;

  // Queued work counts as not idle; null (the default) counts nothing. Before Start().
  void SetIdleVeto(const IdleVeto* veto) { veto_ = veto; }

  void Start();
  void Stop();  // idempotent; an in-progress tick finishes first
  // A function was deployed or updated: a sleeping loop starts again (its first pass after one
  // interval). Does nothing before Start() or after Stop().
  void Wake();
  // Whether the loop has a thread now (tests).
  bool Awake() const;

  // One pass over every function (what the loop runs each interval). False when the provider
  // did not answer and the pass stopped short.
  bool Tick();

  // "name.namespace" → the replicas the autoscaler wants, for each function it manages.
  std::map<std::string, uint64_t> Desired() const;

 private:
  struct Managed {
    FunctionScaler scaler;
    std::set<std::string> warned;  // label warnings already logged, logged once each
  };
  void Scan(const provider::FunctionStatus& f, const std::string& ns, const InvocationLoad& load,
            std::map<std::string, uint64_t>* desired);
  void Loop();
  void StartThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AutoscalerOptions options_;
  provider::FunctionProvider& provider_;
  const LoadSource& load_;
  const provider::Clock& clock_;
  const IdleVeto* veto_ = nullptr;
  std::map<std::string, std::unique_ptr<Managed>> functions_;  // loop thread only

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // between Start() and Stop()
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool awake_ ABSL_GUARDED_BY(mu_) = false;  // a thread is in Loop()
  bool woken_ ABSL_GUARDED_BY(mu_) = false;  // Wake() since the current pass began
  std::map<std::string, uint64_t> desired_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace faasd::autoscaler
