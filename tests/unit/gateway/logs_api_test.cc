// GET /system/logs over real loopback HTTP: the query read as faas-provider reads it, the NDJSON
// it answers, and a follow that delivers new lines and ends when the client goes.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "catch.hpp"
#include "eventually.h"
#include "nlohmann/json.hpp"
#include "test_support.h"

namespace faasd::gateway::testing {
namespace {

using ::faasd::testing::Eventually;
using nlohmann::json;

// The gateway fixture with a function "echo" deployed.
struct Fixture : GatewayFixture {
  Fixture() {
    provider::FunctionDeployment d;
    d.service = "echo";
    d.image = "img";
    REQUIRE(provider.Deploy(d).ok());
  }

  std::shared_ptr<FakeLog> Log() {
    REQUIRE(client->Get("/system/logs?name=echo&follow=false")->status == 200);
    return provider.logs.at("echo.openfaas-fn");
  }
};

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

std::vector<json> Lines(const std::string& body) {
  std::vector<json> out;
  for (absl::string_view l : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    out.push_back(json::parse(l));
  }
  return out;
}

TEST_CASE("logs: auth, unknown function 404, bad name 400", "[gateway][logs]") {
  Fixture f;
  httplib::Client anon("127.0.0.1", f.gateway->port());
  CHECK(anon.Get("/system/logs?name=echo")->status == 401);
  auto r = f.client->Get("/system/logs?name=nosuch");
  CHECK(r->status == 404);
  CHECK(r->body.find("nosuch") != std::string::npos);
  CHECK(f.client->Get("/system/logs")->status == 400);
  CHECK(f.client->Get("/system/logs?name=../x")->status == 400);
  CHECK(f.client->Get("/system/logs?name=echo&namespace=Bad_NS")->status == 400);
}

TEST_CASE("logs: tail and since parse as Go does; anything else is a 422", "[gateway][logs]") {
  Fixture f;
  for (const char* bad :
       {"tail=abc", "tail=1.5", "tail=%205", "tail=0x10", "tail=-", "tail=99999999999999999999",
        "since=yesterday", "since=10m", "since=2024-13-01T00:00:00Z", "since=2023-02-29T00:00:00Z",
        "since=2024-01-01T00:00:00", "since=2024-01-01T24:00:00Z", "since=2024-01-01 00:00:00Z",
        "since=2024-01-01T00:00:00z", "since=2024-01-01T00:00:00%2B0100",
        "since=2024-01-01T00:00:00.Z"}) {
    auto r = f.client->Get(absl::StrCat("/system/logs?name=echo&", bad));
    REQUIRE(r);
    CHECK(r->status == 422);
    CHECK(r->body.rfind("could not parse the log request", 0) == 0);
  }
  // Ahead of the existence check, as upstream parses first.
  CHECK(f.client->Get("/system/logs?name=nosuch&tail=x")->status == 422);

  auto ok = [&](const std::string& query) {
    auto r = f.client->Get("/system/logs?name=echo&" + query);
    REQUIRE(r);
    CHECK(r->status == 200);
    return f.provider.last_log_request;
  };
  CHECK(ok("tail=-1").tail == -1);
  CHECK(ok("tail=%2B5").tail == 5);
  CHECK(ok("tail=0").tail == 0);
  CHECK(ok("tail=").tail == 0);
  CHECK(ok("tail=1&tail=7").tail == 7);  // the last of repeated values
  CHECK(*ok("since=2024-01-01T01:30:00%2B01:30").since == absl::FromUnixSeconds(1704067200));
  CHECK(*ok("since=2024-02-29T00:00:00.5Z").since ==
        absl::FromUnixSeconds(1709164800) + absl::Milliseconds(500));
  CHECK(*ok("since=2024-01-01T00:00:00.1234567891Z").since ==
        absl::FromUnixSeconds(1704067200) + absl::Nanoseconds(123456789));
  CHECK(!ok("since=").since.has_value());
  for (const char* yes : {"true", "1", "t", "T", "TRUE", "True"}) {
    // A follow of an empty log never ends on its own: ask with a short read timeout.
    httplib::Client c("127.0.0.1", f.gateway->port());
    c.set_basic_auth("admin", "s3cret");
    c.set_read_timeout(0, 300000);
    (void)c.Get(absl::StrCat("/system/logs?name=echo&follow=", yes));
    CHECK(f.provider.last_log_request.follow);
  }
  for (const char* no : {"false", "0", "yes", "on", "", "truee"}) {
    CHECK(!ok(absl::StrCat("follow=", no)).follow);
  }
  CHECK(ok("instance=echo-1234").instance == "echo-1234");
  CHECK(ok("namespace=").ns == "openfaas-fn");
}

TEST_CASE("logs: NDJSON lines with upstream's fields, chunked", "[gateway][logs]") {
  Fixture f;
  std::shared_ptr<FakeLog> log = f.Log();
  log->Append({"echo-1", kT0 + absl::Nanoseconds(120), "first \"quoted\" \xc3\xa9"});
  log->Append({"echo-2", kT0, "second"});
  log->Append({"echo-1", kT0 + absl::Seconds(2), "third"});
  auto r = f.client->Get("/system/logs?name=echo&namespace=openfaas-fn&tail=-1");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/x-ndjson");
  CHECK(r->get_header_value("Transfer-Encoding") == "chunked");
  std::vector<json> lines = Lines(r->body);
  REQUIRE(lines.size() == 3);
  CHECK(r->body.rfind(R"({"name":"echo","namespace":"openfaas-fn","instance":"echo-1",)"
                      R"("timestamp":"2023-11-14T22:13:20.00000012Z","text":"first \"quoted\" )",
                      0) == 0);
  CHECK(lines[1]["timestamp"] == "2023-11-14T22:13:20Z");  // RFC3339Nano drops zero fractions
  CHECK(lines[0]["text"] == "first \"quoted\" \xc3\xa9");

  lines = Lines(f.client->Get("/system/logs?name=echo&tail=1")->body);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["text"] == "third");
  lines = Lines(f.client->Get("/system/logs?name=echo&instance=echo-1")->body);
  CHECK(lines.size() == 2);
  lines = Lines(f.client->Get("/system/logs?name=echo&since=2023-11-14T22:13:21Z")->body);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["text"] == "third");
}

// A raw client, so the test controls exactly when the connection goes away.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~RawClient() { Close(); }
  void Send(const std::string& s) {
    REQUIRE(::write(fd_, s.data(), s.size()) == ssize_t(s.size()));
  }
  // Reads until `needle` has arrived or `timeout` passes; returns everything read so far.
  std::string ReadUntil(const std::string& needle, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (got_.find(needle) == std::string::npos && absl::Now() < deadline) {
      struct pollfd p = {fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      got_.append(buf, static_cast<size_t>(n));
    }
    return got_;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string got_;
};

TEST_CASE("logs: a follow streams new lines at once and ends when the client goes",
          "[gateway][logs]") {
  Fixture f;
  std::shared_ptr<FakeLog> log = f.Log();
  log->Append({"echo-1", kT0, "old"});
  RawClient c(f.gateway->port());
  c.Send(
      "GET /system/logs?name=echo&follow=true&tail=-1 HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Basic YWRtaW46czNjcmV0\r\n\r\n");
  std::string got = c.ReadUntil("\"old\"", absl::Seconds(2));
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(got.find("\"old\"") != std::string::npos);
  CHECK(Eventually([&] { return f.provider.open_log_streams.load() == 1; }, absl::Seconds(2)));

  const absl::Time t = absl::Now();
  log->Append({"echo-1", absl::Now(), "fresh"});
  got = c.ReadUntil("\"fresh\"", absl::Seconds(2));
  REQUIRE(got.find("\"fresh\"") != std::string::npos);
  CHECK(absl::Now() - t < absl::Milliseconds(500));

  // The client goes while nothing is being written: the stream is released promptly.
  c.Close();
  CHECK(Eventually([&] { return f.provider.open_log_streams.load() == 0; }, absl::Seconds(2)));
  // And the server still serves.
  CHECK(f.client->Get("/system/logs?name=echo")->status == 200);
}

// Asks for a follow of echo's log on `c`: true once the answer's head has arrived and the
// follow's stream is the one open (Log()'s own is released once httplib is done with its
// response, which may be just after the client has read it).
bool StartFollow(Fixture& f, RawClient& c, absl::Duration timeout) {
  c.Send(
      "GET /system/logs?name=echo&follow=1 HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Basic YWRtaW46czNjcmV0\r\n\r\n");
  return c.ReadUntil("\r\n\r\n", timeout).rfind("HTTP/1.1 200", 0) == 0 &&
         Eventually([&] { return f.provider.open_log_streams.load() == 1; }, timeout);
}

// Other connections coming and going: one thread opens sockets, another closes them, 16 to 32
// open at any time (the way a server accepts on one thread and closes on a worker).
class SocketChurn {
 public:
  SocketChurn() : opener_([this] { Run(true); }), closer_([this] { Run(false); }) {}
  ~SocketChurn() {
    stop_ = true;
    opener_.join();
    closer_.join();
    for (int fd : open_) ::close(fd);
  }

 private:
  void Run(bool open) {
    while (!stop_.load()) {
      std::unique_lock<std::mutex> l(mu_);
      if (open && open_.size() < 32) {
        open_.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      } else if (!open && open_.size() > 16) {
        const int fd = open_.front();
        open_.pop_front();
        l.unlock();
        ::close(fd);
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<int> open_;  // guarded by mu_
  std::thread opener_, closer_;
};

TEST_CASE("logs: a follow starts and ends while other connections come and go",
          "[gateway][logs]") {
  // Under ThreadSanitizer (scripts/test.sh) this checks that a follow touches no descriptor but
  // its own: it used to look its client's socket up among all of the process's descriptors
  // (fstat, getpeername), racing with the threads that close theirs.
  Fixture f;
  f.Log();
  SocketChurn churn;
  for (int i = 0; i < 5; ++i) {  // each follow looks its client up once
    RawClient c(f.gateway->port());
    CHECK(StartFollow(f, c, absl::Seconds(5)));
    c.Close();
    CHECK(Eventually([&] { return f.provider.open_log_streams.load() == 0; }, absl::Seconds(5)));
  }
}

TEST_CASE("logs: a follow ends with the server", "[gateway][logs]") {
  Fixture f;
  f.Log();
  RawClient c(f.gateway->port());
  REQUIRE(StartFollow(f, c, absl::Seconds(2)));
  const absl::Time t = absl::Now();
  f.gateway->Stop();
  CHECK(absl::Now() - t < absl::Seconds(2));
  CHECK(f.provider.open_log_streams.load() == 0);
}

}  // namespace
}  // namespace faasd::gateway::testing
