// The successor's side of a handover: which variables it trusts, and how it learns that its
// predecessor is gone. (The whole handover, under load, is tests/integration/test_restart.py.)
#include "base/handover.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <thread>

#include "catch.hpp"

namespace faasd {
namespace {

// A pipe whose read end sits at fd 4, where a successor finds its lifeline.
struct Lifeline {
  Lifeline() {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    saved = ::fcntl(4, F_DUPFD_CLOEXEC, 10);  // whatever fd 4 was, back afterwards
    REQUIRE(::dup2(fds[0], 4) == 4);
    ::close(fds[0]);
    write_end = fds[1];
  }
  ~Lifeline() {
    if (write_end >= 0) ::close(write_end);
    ::close(4);
    if (saved >= 0) {
      ::dup2(saved, 4);
      ::close(saved);
    }
  }
  int saved = -1;
  int write_end = -1;
};

TEST_CASE("handover: the variables are taken once and a pid that is not our parent is ignored") {
  Lifeline line;
  ::setenv("FAASD_HANDOVER_PID", std::to_string(::getppid()).c_str(), 1);
  ::setenv("FAASD_HANDOVER_FD", "4", 1);
  Predecessor p = TakePredecessor();
  CHECK(p.pid == ::getppid());
  CHECK(p.lifeline == 4);
  CHECK(::getenv("FAASD_HANDOVER_PID") == nullptr);
  CHECK(::getenv("FAASD_HANDOVER_FD") == nullptr);
  CHECK(TakePredecessor().pid == -1);  // gone from the environment

  ::setenv("FAASD_HANDOVER_PID", std::to_string(::getpid()).c_str(), 1);  // not our parent
  ::setenv("FAASD_HANDOVER_FD", "9", 1);                                  // not fd 4
  p = TakePredecessor();
  CHECK(p.pid == -1);
  CHECK(p.lifeline == -1);
}

TEST_CASE("handover: the predecessor is gone when the lifeline's last writer closes it") {
  Lifeline line;
  Predecessor p{-1, 4};
  std::thread exits([&] {
    ::usleep(50 * 1000);  // the "predecessor" exits a little later: this is the event awaited
    ::close(line.write_end);
    line.write_end = -1;
  });
  absl::StatusOr<absl::Duration> took = RetirePredecessor(p, absl::Seconds(10));
  exits.join();
  REQUIRE(took.ok());
  CHECK(*took >= absl::Milliseconds(40));
  CHECK(*took < absl::Seconds(10));
}

TEST_CASE("handover: a predecessor that stays is reported after the wait") {
  Lifeline line;
  Predecessor p{-1, 4};
  absl::StatusOr<absl::Duration> took = RetirePredecessor(p, absl::Milliseconds(100));
  CHECK(absl::IsDeadlineExceeded(took.status()));
}

TEST_CASE("handover: the executable path has no ' (deleted)' suffix") {
  const std::string self = ExecutableOf(::getpid());
  CHECK(self.find("base_test") != std::string::npos);
  CHECK(self.find(" (deleted)") == std::string::npos);
}

}  // namespace
}  // namespace faasd
