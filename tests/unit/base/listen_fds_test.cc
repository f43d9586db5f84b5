// Socket activation's variables: ours, someone else's, malformed, or more than one socket.
#include "base/listen_fds.h"

#include "catch.hpp"

namespace faasd {
namespace {

TEST_CASE("listen fds: the socket is fd 3 when LISTEN_PID is us and LISTEN_FDS is 1") {
  CHECK(*ParseListenFds("42", "1", 42) == 3);
}

TEST_CASE("listen fds: absent, for another process, or zero sockets means none") {
  CHECK(*ParseListenFds(nullptr, nullptr, 42) == -1);
  CHECK(*ParseListenFds("42", nullptr, 42) == -1);
  CHECK(*ParseListenFds("41", "1", 42) == -1);
  CHECK(*ParseListenFds("42", "0", 42) == -1);
}

TEST_CASE("listen fds: malformed values and more than one socket are errors naming the value") {
  CHECK(ParseListenFds("x", "1", 42).status().message() == "LISTEN_PID=x: not a pid");
  CHECK(ParseListenFds("-1", "1", 42).status().message() == "LISTEN_PID=-1: not a pid");
  CHECK(ParseListenFds("42", "one", 42).status().message() == "LISTEN_FDS=one: not a count");
  CHECK(ParseListenFds("42", "2", 42).status().message() ==
        "LISTEN_FDS=2: faasd serves one socket (faasd.socket has one)");
}

}  // namespace
}  // namespace faasd
