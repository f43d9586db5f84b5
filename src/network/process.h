// Runs one program to completion with no shell in between: argv[0] is an absolute path, the
// environment is exactly `env`, stdin is fed from a string, stdout and stderr are captured.
// A program that outlives `timeout` is killed (SIGKILL) and reaped, and the call returns
// DeadlineExceeded. Safe to call from many threads at once: everything the child needs is built
// before fork, and the child closes every descriptor it did not ask for.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace faasd::network {

struct ProcessOutput {
  int exit_code = 0;  // 128 + signal number when the program died of a signal
  std::string stdout_data;
  std::string stderr_data;
};

// Output beyond this many bytes per stream is dropped: a plugin result is a few KB, and a
// runaway program must not grow the daemon without bound.
inline constexpr size_t kMaxCapturedBytes = 4 << 20;

absl::StatusOr<ProcessOutput> RunProcess(const std::string& path,
                                         const std::vector<std::string>& args,
                                         const std::vector<std::string>& env,
                                         const std::string& stdin_data, absl::Duration timeout);

}  // namespace faasd::network
