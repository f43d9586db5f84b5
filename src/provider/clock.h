// The time a crashing replica's restart back-off is counted in: when it last started, when it
// may start again. SystemClock is the wall clock; the unit tests hold one they move by hand, so
// a back-off of seconds is checked in milliseconds.
//
// Implementations are thread-safe.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace faasd::provider {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace faasd::provider
