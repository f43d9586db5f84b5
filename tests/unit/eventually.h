// Polling with a deadline, for tests that wait on another thread: never a bare sleep as
// synchronisation.
#pragma once

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace faasd::testing {

// Polls `done` every `interval` until it holds (true) or `timeout` passes (false); `done` is
// checked once more after the deadline.
inline bool Eventually(const std::function<bool()>& done,
                       absl::Duration timeout = absl::Seconds(5),
                       absl::Duration interval = absl::Milliseconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

}  // namespace faasd::testing
