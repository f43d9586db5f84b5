// Pure logic of fwatchdog: durations, config from env, CGI names and env, marshal_request,
// process splitting, log lines, and HTTP framing over a socketpair.
#include "watchdog/watchdog.h"

#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>

#include "catch.hpp"
#include "watchdog/child_process.h"
#include "watchdog/handlers.h"
#include "watchdog/http_io.h"

namespace faasd::watchdog {
namespace {

using Env = std::map<std::string, std::string>;

absl::StatusOr<Config> FromEnv(const Env& env) {
  return ConfigFromEnv([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST_CASE("ParseDuration accepts Go durations and plain seconds") {
  CHECK(*ParseDuration("10s") == absl::Seconds(10));
  CHECK(*ParseDuration("500ms") == absl::Milliseconds(500));
  CHECK(*ParseDuration("1m30s") == absl::Seconds(90));
  CHECK(*ParseDuration("1.5h") == absl::Minutes(90));
  CHECK(*ParseDuration("250us") == absl::Microseconds(250));
  CHECK(*ParseDuration("250\xc2\xb5s") == absl::Microseconds(250));
  CHECK(*ParseDuration("7") == absl::Seconds(7));
  CHECK(*ParseDuration("0") == absl::ZeroDuration());
  CHECK(*ParseDuration("0s") == absl::ZeroDuration());
}

TEST_CASE("ParseDuration rejects garbage and negatives") {
  CHECK_FALSE(ParseDuration("").ok());
  CHECK_FALSE(ParseDuration("ten").ok());
  CHECK_FALSE(ParseDuration("10 s").ok());
  CHECK_FALSE(ParseDuration("-5s").ok());
  CHECK_FALSE(ParseDuration("5x").ok());
  CHECK_FALSE(ParseDuration("inf").ok());
}

TEST_CASE("CgiEnvName maps header names as upstream") {
  CHECK(CgiEnvName("Content-Type") == "Http_Content_Type");
  CHECK(CgiEnvName("X-Call-Id") == "Http_X_Call_Id");
  CHECK(CgiEnvName("Accept") == "Http_Accept");
  CHECK(CanonicalHeaderKey("x-custom-HEADER") == "X-Custom-Header");
  CHECK(CanonicalHeaderKey("content-type") == "Content-Type");
  CHECK(CanonicalHeaderKey("bad key") == "bad key");
}

TEST_CASE("Config: classic without mode and upstream_url, upstream defaults") {
  auto c = FromEnv({{"fprocess", "cat"}});
  REQUIRE(c.ok());
  CHECK(c->mode == Mode::kClassic);
  CHECK(c->port == 8080);
  CHECK(c->read_timeout == absl::Seconds(30));
  CHECK(c->write_timeout == absl::Seconds(30));
  CHECK(c->exec_timeout == absl::ZeroDuration());
  CHECK(c->combine_output);
  CHECK_FALSE(c->marshal_request);
  CHECK(c->prefix_logs);
  CHECK_FALSE(c->suppress_lock);
  CHECK(c->max_inflight == 0);
  CHECK(c->lock_dir == "/tmp");
}

TEST_CASE("Config: of-watchdog modes and values") {
  auto c = FromEnv({{"fprocess", "node index.js"},
                    {"mode", "http"},
                    {"upstream_url", "http://localhost:5000"},
                    {"exec_timeout", "2s"},
                    {"read_timeout", "5"},
                    {"write_timeout", "1m"},
                    {"max_inflight", "3"},
                    {"port", "9090"},
                    {"suppress_lock", "true"},
                    {"prefix_logs", "false"},
                    {"combine_output", "false"},
                    {"content_type", "text/plain"},
                    {"TMPDIR", "/run/x"}});
  REQUIRE(c.ok());
  CHECK(c->mode == Mode::kHttp);
  CHECK(c->upstream_host == "127.0.0.1");
  CHECK(c->upstream_port == 5000);
  CHECK(c->exec_timeout == absl::Seconds(2));
  CHECK(c->read_timeout == absl::Seconds(5));
  CHECK(c->write_timeout == absl::Minutes(1));
  CHECK(c->max_inflight == 3);
  CHECK(c->port == 9090);
  CHECK(c->suppress_lock);
  CHECK_FALSE(c->prefix_logs);
  CHECK_FALSE(c->combine_output);
  CHECK(c->content_type == "text/plain");
  CHECK(c->lock_dir == "/run/x");

  auto s = FromEnv({{"fprocess", "cat"}, {"mode", "streaming"}});
  REQUIRE(s.ok());
  CHECK(s->exec_timeout == absl::Seconds(10));  // of-watchdog default
  CHECK(s->read_timeout == absl::Seconds(10));
  CHECK(FromEnv({{"fprocess", "cat"}, {"upstream_url", "http://127.0.0.1:3000"}})->mode ==
        Mode::kStreaming);
  CHECK(FromEnv({{"mode", "static"}})->static_path == "/home/app/public");
  CHECK(FromEnv({{"fprocess", "cat"}, {"mode", "serializing"}})->mode == Mode::kSerializing);
  CHECK(FromEnv({{"fprocess", "cat"}, {"upstream_url", ""}})->mode == Mode::kClassic);
}

TEST_CASE("Config errors name the variable") {
  auto no_process = FromEnv({});
  REQUIRE_FALSE(no_process.ok());
  CHECK(no_process.status().message().find("fprocess") != absl::string_view::npos);
  auto bad_mode = FromEnv({{"fprocess", "cat"}, {"mode", "afterburn"}});
  REQUIRE_FALSE(bad_mode.ok());
  CHECK(bad_mode.status().message().find("mode=afterburn") != absl::string_view::npos);
  auto bad_timeout = FromEnv({{"fprocess", "cat"}, {"exec_timeout", "soon"}});
  REQUIRE_FALSE(bad_timeout.ok());
  CHECK(bad_timeout.status().message().find("exec_timeout") != absl::string_view::npos);
  CHECK_FALSE(FromEnv({{"fprocess", "cat"}, {"max_inflight", "-1"}}).ok());
  CHECK_FALSE(FromEnv({{"fprocess", "cat"}, {"port", "70000"}}).ok());
  CHECK_FALSE(FromEnv({{"fprocess", "x"}, {"mode", "http"}, {"upstream_url", "https://a:1"}}).ok());
  CHECK_FALSE(FromEnv({{"fprocess", "x"}, {"mode", "http"}, {"upstream_url", "http://fn:1"}}).ok());
  CHECK_FALSE(FromEnv({{"fprocess", "   "}}).ok());
}

TEST_CASE("ParseUpstreamUrl") {
  std::string host;
  int port = 0;
  REQUIRE(ParseUpstreamUrl("http://127.0.0.1:3000/", &host, &port).ok());
  CHECK(host == "127.0.0.1");
  CHECK(port == 3000);
  REQUIRE(ParseUpstreamUrl("http://10.0.0.2", &host, &port).ok());
  CHECK(port == 80);
  CHECK_FALSE(ParseUpstreamUrl("http://1.2.3.4:0", &host, &port).ok());
}

TEST_CASE("SplitProcess splits on spaces and drops empty pieces") {
  CHECK(SplitProcess("cat") == std::vector<std::string>{"cat"});
  CHECK(SplitProcess("sh  -c  env") == std::vector<std::string>{"sh", "-c", "env"});
  CHECK(SplitProcess("").empty());
}

TEST_CASE("CgiEnvironment carries method, path, query, length and headers") {
  MessageHead head;
  head.method = "POST";
  head.path = "/fn/x";
  head.query = "a=1&b=2";
  head.content_length = 5;
  head.headers = {{"content-type", "text/plain"},
                  {"X-Call-Id", "abc"},
                  {"x-call-id", "second"},
                  {"Host", "gw:8080"},
                  {"Content-Length", "5"}};
  Config config;
  auto env = CgiEnvironment(config, head);
  auto has = [&env](const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  CHECK(has("Http_Method=POST"));
  CHECK(has("Http_Path=/fn/x"));
  CHECK(has("Http_Query=a=1&b=2"));
  CHECK(has("Http_ContentLength=5"));
  CHECK(has("Http_Content_Length=5"));
  CHECK(has("Http_Content_Type=text/plain"));
  CHECK(has("Http_X_Call_Id=abc"));
  CHECK_FALSE(has("Http_X_Call_Id=second"));
  CHECK(has("Http_Host=gw:8080"));
  CHECK(std::count_if(env.begin(), env.end(), [](const std::string& e) {
          return e.rfind("Http_Content_Length=", 0) == 0;
        }) == 1);
  config.cgi_headers = false;
  auto plain = CgiEnvironment(config, head);
  CHECK(std::none_of(plain.begin(), plain.end(),
                     [](const std::string& e) { return e.rfind("Http_", 0) == 0; }));
}

TEST_CASE("MarshalRequestJson matches the classic watchdog's shape") {
  MessageHead head;
  head.headers = {{"X-B", "2"}, {"accept", "a\"b"}, {"X-B", "3"}, {"Host", "h"}};
  CHECK(MarshalRequestJson(head, "hi") ==
        R"({"header":{"Accept":["a\"b"],"X-B":["2","3"]},"body":{"raw":"aGk="}})");
  CHECK(MarshalRequestJson(MessageHead{}, "") == R"({"header":{},"body":{"raw":""}})");
}

TEST_CASE("DescribeWaitStatus reads like Go's exec errors") {
  CHECK(DescribeWaitStatus(3 << 8) == "exit status 3");
  CHECK(DescribeWaitStatus(9) == "signal: killed");
}

// A socketpair: the test writes raw bytes on one end, the parser reads the other.
struct Pair {
  Pair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    reader = std::make_unique<Socket>(fds[0]);
  }
  ~Pair() { ::close(fds[1]); }
  void Send(const std::string& s) {
    REQUIRE(::write(fds[1], s.data(), s.size()) == (ssize_t)s.size());
  }
  int fds[2];
  std::unique_ptr<Socket> reader;
};

std::string ReadAll(BodyReader& body) {
  std::string out;
  char buf[7];  // small on purpose: exercises chunk boundaries
  for (int i = 0; i < 10000 && !body.done(); ++i) {
    ssize_t n = body.Read(buf, sizeof(buf));
    if (n < 0) return "<error>";
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST_CASE("Request head, Content-Length body and a pipelined second request") {
  Pair p;
  p.Send(
      "POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nX-Y:  z \r\n\r\nhello world"
      "GET /_/health HTTP/1.0\r\n\r\n");
  auto head = p.reader->ReadRequestHead();
  REQUIRE(head.ok());
  CHECK(head->method == "POST");
  CHECK(head->path == "/a/b");
  CHECK(head->query == "x=1");
  CHECK(head->content_length == 11);
  CHECK(head->keep_alive);
  CHECK(*head->Find("x-y") == "z");
  BodyReader body = BodyReader::ForRequest(p.reader.get(), *head);
  CHECK(body.FullyBuffered());
  CHECK(ReadAll(body) == "hello world");
  auto second = p.reader->ReadRequestHead();
  REQUIRE(second.ok());
  CHECK(second->path == "/_/health");
  CHECK_FALSE(second->http11);
  CHECK_FALSE(second->keep_alive);
}

TEST_CASE("Chunked bodies decode, with extensions and trailers") {
  Pair p;
  p.Send(
      "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\nA\r\n, chunked!\r\n0\r\nTrailer: x\r\n\r\n");
  auto head = p.reader->ReadRequestHead();
  REQUIRE(head.ok());
  CHECK(head->chunked);
  BodyReader body = BodyReader::ForRequest(p.reader.get(), *head);
  CHECK(ReadAll(body) == "hello, chunked!");
}

TEST_CASE("Malformed input is an error, not a hang or a crash") {
  {
    Pair p;
    p.Send("GARBAGE\r\n\r\n");
    auto head = p.reader->ReadRequestHead();
    CHECK(absl::IsInvalidArgument(head.status()));
  }
  {
    Pair p;
    p.Send("POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
    CHECK(absl::IsInvalidArgument(p.reader->ReadRequestHead().status()));
  }
  {
    Pair p;
    p.Send("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    auto head = p.reader->ReadRequestHead();
    REQUIRE(head.ok());
    BodyReader body = BodyReader::ForRequest(p.reader.get(), *head);
    CHECK(ReadAll(body) == "<error>");
  }
  {
    Pair p;
    p.Send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    ::shutdown(p.fds[1], SHUT_WR);
    auto head = p.reader->ReadRequestHead();
    REQUIRE(head.ok());
    BodyReader body = BodyReader::ForRequest(p.reader.get(), *head);
    CHECK(ReadAll(body) == "<error>");  // truncated
  }
  {
    Pair p;
    ::shutdown(p.fds[1], SHUT_WR);
    CHECK(absl::IsNotFound(p.reader->ReadRequestHead().status()));
  }
}

TEST_CASE("Deadline on a socket read times out instead of blocking") {
  Pair p;
  p.reader->set_deadline(Clock::now() + std::chrono::milliseconds(50));
  auto start = Clock::now();
  auto head = p.reader->ReadResponseHead();
  CHECK(absl::IsDeadlineExceeded(head.status()));
  CHECK(p.reader->timed_out());
  CHECK(Clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("ResponseWriter frames chunked and fixed bodies and adds X-Duration-Seconds") {
  Pair p;
  MessageHead req;
  req.method = "GET";
  Socket writer_side(::dup(p.fds[1]));
  ResponseWriter w(&writer_side, req, Clock::now());
  REQUIRE(w.WriteHead(200, {{"Content-Type", "text/plain"}}, -1));
  REQUIRE(w.WriteBody("abc"));
  REQUIRE(w.Finish());
  CHECK(w.keep_alive());
  auto head = p.reader->ReadResponseHead();
  // reader reads from fds[0]; writer wrote to fds[1]'s dup, so bytes arrive at fds[0].
  REQUIRE(head.ok());
  CHECK(head->status == 200);
  CHECK(head->chunked);
  CHECK(head->Find("X-Duration-Seconds") != nullptr);
  BodyReader body(p.reader.get(), BodyReader::Framing::kChunked, -1);
  CHECK(ReadAll(body) == "abc");
}

TEST_CASE("LineLogger splits long lines at log_buffer_size") {
  // Writes to stderr; this checks it neither crashes nor loses the tail on Flush.
  LineLogger log("stderr", true, 4);
  log.Feed("abcdefghij\nxy");
  log.Flush();
  SUCCEED();
}

}  // namespace
}  // namespace faasd::watchdog
