// The small fakes of the provider's lifecycle tests: an image source that pulls nothing, a
// readiness probe a test sets ready or not, and a clock a test moves by hand. Thread-safe.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "provider/clock.h"
#include "provider/image_source.h"
#include "provider/readiness_probe.h"

namespace faasd::provider::testing {

// Every image "pulls" at once with an entrypoint, unless a test makes it missing.
class FakeImages final : public ImageSource {
 public:
  struct Pull {
    std::string image;
    image::PullPolicy policy;
    std::string ns;
  };
  absl::StatusOr<image::PulledImage> Pull(const std::string& ref, image::PullPolicy policy,
                                          const std::string& ns) override {
    absl::MutexLock l(&mu_);
    pulls_.push_back({ref, policy, ns});
    if (missing_.count(ref)) {
      return absl::NotFoundError(absl::StrCat("pull ", ref, ": manifest unknown"));
    }
    image::PulledImage img;
    img.name = ref;
    img.target_digest = "sha256:0123";
    img.config.entrypoint = {"/usr/bin/fwatchdog"};
    img.config.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    img.chain_id = "sha256:chain-of-" + ref;
    return img;
  }
  void Missing(const std::string& ref) {
    absl::MutexLock l(&mu_);
    missing_.insert(ref);
  }
  std::vector<struct Pull> Pulls() const {
    absl::MutexLock l(&mu_);
    return pulls_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<struct Pull> pulls_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> missing_ ABSL_GUARDED_BY(mu_);
};

// Ready by default; a test turns every replica not ready, and back.
class FakeProbe final : public ReadinessProbe {
 public:
  bool Ready(const std::string&, int, const std::string&) override {
    absl::MutexLock l(&mu_);
    ++probes_;
    return ready_;
  }
  void SetReady(bool ready) {
    absl::MutexLock l(&mu_);
    ready_ = ready;
  }
  int Probes() const {
    absl::MutexLock l(&mu_);
    return probes_;
  }

 private:
  mutable absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = true;
  int probes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Stands still until a test moves it.
class FakeClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1700000000);
};

}  // namespace faasd::provider::testing
