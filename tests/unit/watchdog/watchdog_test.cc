// Pure logic of fwatchdog: durations, config from env, CGI names and env, marshal_request,
// process splitting, log lines, and HTTP framing (Beast glue) over a socketpair.
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

// A socketpair: the test writes raw bytes on one end, the watchdog's reader parses the other.
struct Pair {
  Pair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    reader = std::make_unique<Socket>(fds[0]);
  }
  ~Pair() {
    if (fds[1] >= 0) ::close(fds[1]);
  }
  void Send(const std::string& s) {
    REQUIRE(::write(fds[1], s.data(), s.size()) == (ssize_t)s.size());
  }
  void Close() {
    ::close(fds[1]);
    fds[1] = -1;
  }
  // The status of reading one request head from raw bytes (the peer closes after them).
  static absl::Status HeadStatus(const std::string& raw) {
    Pair p;
    p.Send(raw);
    p.Close();
    RequestReader reader(p.reader.get());
    return reader.ReadHead();
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
      "\r\nGET /_/health HTTP/1.0\r\n\r\n");
  RequestReader first(p.reader.get());
  REQUIRE(first.ReadHead().ok());
  MessageHead head = ToMessageHead(first);
  CHECK(head.method == "POST");
  CHECK(head.path == "/a/b");
  CHECK(head.query == "x=1");
  CHECK(head.content_length == 11);
  CHECK(head.keep_alive);
  CHECK(*head.Find("x-y") == "z");
  CHECK(head.headers.size() == 3);
  CHECK(first.FullyBuffered());
  CHECK(ReadAll(first) == "hello world");
  RequestReader second(p.reader.get());  // after a stray CRLF (RFC 9112 2.2)
  REQUIRE(second.ReadHead().ok());
  MessageHead next = ToMessageHead(second);
  CHECK(next.path == "/_/health");
  CHECK_FALSE(next.http11);
  CHECK_FALSE(next.keep_alive);
  CHECK(second.done());
}

TEST_CASE("Chunked bodies decode, with extensions and trailers") {
  Pair p;
  p.Send(
      "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
      "5;ext=1\r\nhello\r\nA\r\n, chunked!\r\n0\r\nTrailer: x\r\n\r\n");
  RequestReader reader(p.reader.get());
  REQUIRE(reader.ReadHead().ok());
  MessageHead head = ToMessageHead(reader);
  CHECK(head.chunked);
  CHECK(head.content_length == -1);
  CHECK(head.expect_continue);
  CHECK_FALSE(reader.FullyBuffered());
  CHECK(ReadAll(reader) == "hello, chunked!");
}

TEST_CASE("Malformed input is an error, not a hang or a crash") {
  CHECK(absl::IsInvalidArgument(Pair::HeadStatus("GARBAGE\r\n\r\n")));
  CHECK(
      absl::IsInvalidArgument(Pair::HeadStatus("POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")));
  CHECK(absl::IsInvalidArgument(Pair::HeadStatus("GET / HTTP/1.1\r\nHost: x\r\n")));  // cut
  CHECK(absl::IsNotFound(Pair::HeadStatus("")));
  {
    Pair p;
    p.Send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    p.Close();
    RequestReader reader(p.reader.get());
    REQUIRE(reader.ReadHead().ok());
    CHECK(ReadAll(reader) == "<error>");  // truncated
  }
}

// The request smuggling and header-injection shapes of issue 8: each one is refused as
// malformed (the server answers 400 and closes), never read with a guessed length.
TEST_CASE("Ambiguous framing and bad header bytes are refused") {
  const char* kRefused[] = {
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",  // bare CR in a value
      "GET / HTTP/1.1\r\nX A: b\r\n\r\n",     // space in a name
      "GET / HTTP/1.1\r\n: b\r\n\r\n",        // empty name
      "GET / HTTP/1.1\rHost: x\r\n\r\n",      // bare CR ending a line
      "GET /\x01 HTTP/1.1\r\n\r\n",           // control in the target
  };
  for (const char* raw : kRefused) {
    INFO(raw);
    CHECK(absl::IsInvalidArgument(Pair::HeadStatus(raw)));
  }
  // NUL inside a header value (a C string cannot carry it above).
  std::string nul = "GET / HTTP/1.1\r\nX-A: a";
  nul.push_back('\0');
  nul += "b\r\n\r\n";
  CHECK(absl::IsInvalidArgument(Pair::HeadStatus(nul)));
  // Repeating the same length is not a conflict.
  CHECK(Pair::HeadStatus("POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n").ok());
}

TEST_CASE("A bad chunk size fails the body") {
  for (const char* chunk : {"zz\r\n", "-1\r\n", "ffffffffffffffffff\r\n", "5\r\nhelloXX"}) {
    INFO(chunk);
    Pair p;
    p.Send(std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") + chunk);
    p.Close();
    RequestReader reader(p.reader.get());
    REQUIRE(reader.ReadHead().ok());
    CHECK(ReadAll(reader) == "<error>");
    CHECK(reader.failed());
  }
}

TEST_CASE("A head over 64 KiB is ResourceExhausted (431), one just under it is read") {
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(kMaxHeadBytes, 'a') + "\r\n\r\n";
  CHECK(absl::IsResourceExhausted(Pair::HeadStatus(big)));
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; many.size() < kMaxHeadBytes + 100; ++i) {
    many += "X-H" + std::to_string(i) + ": v\r\n";
  }
  absl::Status many_status = Pair::HeadStatus(many + "\r\n");
  INFO(many_status.ToString());
  CHECK(absl::IsResourceExhausted(many_status));
  std::string fits =
      "GET / HTTP/1.1\r\nX-Big: " + std::string(kMaxHeadBytes - 100, 'a') + "\r\n\r\n";
  CHECK(Pair::HeadStatus(fits).ok());
}

TEST_CASE("Deadline on a socket read times out instead of blocking") {
  Pair p;
  p.reader->set_deadline(Clock::now() + std::chrono::milliseconds(50));
  auto start = Clock::now();
  ResponseReader reader(p.reader.get());
  CHECK(absl::IsDeadlineExceeded(reader.ReadHead()));
  CHECK(p.reader->timed_out());
  CHECK(Clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("ResponseWriter frames chunked and fixed bodies and adds X-Duration-Seconds") {
  Pair p;
  MessageHead req;
  req.method = "GET";
  Socket writer_side(::dup(p.fds[1]));  // bytes written here arrive at p.reader
  {
    ResponseWriter w(&writer_side, req, Clock::now());
    REQUIRE(w.WriteHead(200, {{"Content-Type", "text/plain"}}, -1));
    REQUIRE(w.WriteBody("abc"));
    REQUIRE(w.WriteBody("defg"));
    REQUIRE(w.Finish());
    CHECK(w.keep_alive());
  }
  {
    ResponseWriter w(&writer_side, req, Clock::now());
    REQUIRE(w.Send(404, "text/plain", "missing\n"));
  }
  ResponseReader chunked(p.reader.get());
  REQUIRE(chunked.ReadHead().ok());
  CHECK(chunked.head().result_int() == 200);
  CHECK(chunked.chunked());
  CHECK(chunked.head().find("X-Duration-Seconds") != chunked.head().end());
  CHECK(chunked.head()[http::field::content_type] == "text/plain");
  CHECK(ReadAll(chunked) == "abcdefg");
  ResponseReader fixed(p.reader.get());
  REQUIRE(fixed.ReadHead().ok());
  CHECK(fixed.head().result_int() == 404);
  CHECK(fixed.head().reason() == "Not Found");
  CHECK(fixed.length() == 8);
  CHECK(fixed.FullyBuffered());
  CHECK(ReadAll(fixed) == "missing\n");
}

TEST_CASE("ResponseWriter: HEAD gets the head only, HTTP/1.0 a close-delimited body") {
  Pair p;
  Socket writer_side(::dup(p.fds[1]));
  MessageHead head_req;
  head_req.method = "HEAD";
  ResponseWriter head_w(&writer_side, head_req, Clock::now());
  REQUIRE(head_w.Send(200, "text/plain", "twelve bytes"));
  MessageHead old;
  old.method = "GET";
  old.http11 = false;
  old.keep_alive = false;
  ResponseWriter old_w(&writer_side, old, Clock::now());
  REQUIRE(old_w.WriteHead(200, {}, -1));
  REQUIRE(old_w.WriteBody("until "));
  REQUIRE(old_w.WriteBody("close"));
  REQUIRE(old_w.Finish());
  CHECK_FALSE(old_w.keep_alive());
  ResponseReader head_resp(p.reader.get());
  head_resp.SkipBody();
  REQUIRE(head_resp.ReadHead().ok());
  CHECK(head_resp.length() == 12);
  CHECK(head_resp.done());
  ResponseReader close_resp(p.reader.get());
  REQUIRE(close_resp.ReadHead().ok());
  CHECK(close_resp.head().version() == 10);
  CHECK(close_resp.length() == -1);
  CHECK(close_resp.head()[http::field::connection] == "close");
  ::shutdown(writer_side.fd(), SHUT_WR);
  p.Close();
  CHECK(ReadAll(close_resp) == "until close");
  CHECK_FALSE(close_resp.keep_alive());
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
