// The queue's pure parts: how a call travels on the stream, callback URLs and headers, and the
// retry policy's arithmetic.
#include "queue/message.h"

#include <string>

#include "catch.hpp"

namespace faasd::queue {
namespace {

using namespace std::string_literals;

QueuedCall SampleCall() {
  QueuedCall c;
  c.call_id = "0b6f6a0e-5c1f-4bb6-9a8e-2f7d3c4b5a69";
  c.name = "echo";
  c.ns = "openfaas-fn";
  c.addressed = "echo.openfaas-fn";
  c.method = "POST";
  c.path = "/a/b?x=1&y=%20";
  c.headers = {{"Content-Type", "application/octet-stream"},
               {"X-Multi", "one"},
               {"X-Multi", "two"},
               {"X-Odd", "line\nbreak \"quoted\" \xc3\xa9"}};
  c.body = "binary\0body\nwith a newline\xff"s;
  c.callback_url = "http://127.0.0.1:9999/cb?q=1";
  c.queued_at_ns = 1764400000123456789;
  return c;
}

TEST_CASE("a queued call survives encode and decode byte for byte", "[queue]") {
  const QueuedCall in = SampleCall();
  const std::string wire = EncodeCall(in);
  CHECK(wire.find('\n') < wire.size() - in.body.size());  // one metadata line, then the body
  absl::StatusOr<QueuedCall> out = DecodeCall(wire);
  REQUIRE(out.ok());
  CHECK(out->call_id == in.call_id);
  CHECK(out->name == in.name);
  CHECK(out->ns == in.ns);
  CHECK(out->addressed == in.addressed);
  CHECK(out->method == in.method);
  CHECK(out->path == in.path);
  CHECK(out->headers == in.headers);
  CHECK(out->body == in.body);
  CHECK(out->callback_url == in.callback_url);
  CHECK(out->queued_at_ns == in.queued_at_ns);

  QueuedCall empty = in;
  empty.body.clear();
  empty.headers.clear();
  absl::StatusOr<QueuedCall> e = DecodeCall(EncodeCall(empty));
  REQUIRE(e.ok());
  CHECK(e->body.empty());
  CHECK(e->headers.empty());
}

TEST_CASE("decoding refuses what is not a queued call", "[queue]") {
  CHECK(!DecodeCall("").ok());
  CHECK(!DecodeCall("no newline").ok());
  CHECK(!DecodeCall("not json\nbody").ok());
  CHECK(!DecodeCall("[1,2]\n").ok());
  CHECK(!DecodeCall(R"({"callId":"a","name":"f"})"
                    "\n")
             .ok());  // no namespace
  CHECK(!DecodeCall(R"({"callId":"a","name":"f","namespace":"n","headers":[[1,2]]})"
                    "\n")
             .ok());
}

TEST_CASE("subjects carry the function and the call id", "[queue]") {
  const QueuedCall c = SampleCall();
  CHECK(CallSubject(c) == "faas-request.echo.openfaas-fn.0b6f6a0e-5c1f-4bb6-9a8e-2f7d3c4b5a69");
  CHECK(FunctionKeyOfSubject(CallSubject(c)) == "echo.openfaas-fn");
  CHECK(FunctionKeyOfSubject("other.echo.openfaas-fn.id").empty());
  CHECK(FunctionKeyOfSubject("faas-request.echo").empty());
}

TEST_CASE("call ids: tokens a NATS subject can hold", "[queue]") {
  CHECK(IsValidCallId("0b6f6a0e-5c1f-4bb6-9a8e-2f7d3c4b5a69"));
  CHECK(IsValidCallId("my_call-1"));
  CHECK(!IsValidCallId(""));
  CHECK(!IsValidCallId("a.b"));
  CHECK(!IsValidCallId("a*"));
  CHECK(!IsValidCallId("a>"));
  CHECK(!IsValidCallId("a b"));
  CHECK(!IsValidCallId(std::string(65, 'a')));
}

TEST_CASE("callback URLs: absolute http or https with a host", "[queue]") {
  absl::StatusOr<CallbackUrl> u = ParseCallbackUrl("http://127.0.0.1:8000/cb?x=1#frag");
  REQUIRE(u.ok());
  CHECK(u->scheme == "http");
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 8000);
  CHECK(u->path == "/cb?x=1");
  u = ParseCallbackUrl("https://example.com");
  REQUIRE(u.ok());
  CHECK(u->port == 443);
  CHECK(u->path == "/");
  u = ParseCallbackUrl("http://[::1]:9/x");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 9);
  u = ParseCallbackUrl("http://h?q");
  REQUIRE(u.ok());
  CHECK(u->path == "/?q");

  for (const char* bad :
       {"", "/relative/path", "example.com/cb", "ftp://example.com/", "http://", "http:///x",
        "http://:80/", "http://h:0/", "http://h:65536/", "http://h:8a/",
        "http://a b/", "http://h/\r\nX-Injected: 1", "http://user:pw@h/", "http://[::1/",
        "javascript:alert(1)", "HTTP//h/"}) {
    INFO(bad);
    absl::Status s = CheckCallbackUrl(bad);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.message().find("X-Callback-Url") != absl::string_view::npos);
  }
}

TEST_CASE("callback headers: the function's, less framing, plus the call's", "[queue]") {
  const QueuedCall c = SampleCall();
  InvokeResult r;
  r.status = 201;
  r.duration = absl::Milliseconds(1500);
  r.headers = {{"Content-Type", "text/plain"},      {"Content-Length", "5"},
               {"Connection", "keep-alive"},        {"Transfer-Encoding", "chunked"},
               {"X-Call-Id", "forged"},             {"X-Duration-Seconds", "9"},
               {"X-Fn-Hostname", "echo-1234"},      {"X-OpenFaaS-Internal", "proxy"}};
  const HeaderList h = CallbackHeaders(c, r, 2, 9);
  const HeaderList want = {{"Content-Type", "text/plain"},
                           {"X-Fn-Hostname", "echo-1234"},
                           {"X-Call-Id", c.call_id},
                           {"X-Function-Name", "echo.openfaas-fn"},
                           {"X-Function-Status", "201"},
                           {"X-Duration-Seconds", "1.500000"},
                           {"X-Retry", "2"},
                           {"X-Retry-Max", "9"}};
  CHECK(h == want);

  InvokeResult unreachable;  // status 0: the function could not be reached at all
  const HeaderList u = CallbackHeaders(c, unreachable, 0, 0);
  CHECK(std::find(u.begin(), u.end(), std::pair{"X-Function-Status"s, "503"s}) != u.end());
}

TEST_CASE("retry policy from annotations", "[queue]") {
  RetryPolicy d = RetryPolicyFromAnnotations({});
  CHECK(d.attempts == 10);
  CHECK(d.codes == std::set<int>{408, 429, 500, 502, 503, 504});
  CHECK(d.min_wait == absl::Seconds(10));
  CHECK(d.max_wait == absl::Seconds(120));

  RetryPolicy p = RetryPolicyFromAnnotations({{"com.openfaas.retry.attempts", "3"},
                                              {"com.openfaas.retry.codes", "429, 503 418"},
                                              {"com.openfaas.retry.min_wait", "250ms"},
                                              {"com.openfaas.retry.max_wait", "1m30s"}});
  CHECK(p.attempts == 3);
  CHECK(p.codes == std::set<int>{418, 429, 503});
  CHECK(p.min_wait == absl::Milliseconds(250));
  CHECK(p.max_wait == absl::Seconds(90));

  std::vector<std::string> warnings;
  RetryPolicy bad = RetryPolicyFromAnnotations({{"com.openfaas.retry.attempts", "0"},
                                                {"com.openfaas.retry.codes", "500,abc"},
                                                {"com.openfaas.retry.min_wait", "soon"},
                                                {"com.openfaas.retry.max_wait", "-1s"}},
                                               &warnings);
  CHECK(bad.attempts == 10);
  CHECK(bad.codes == d.codes);
  CHECK(bad.min_wait == d.min_wait);
  CHECK(bad.max_wait == d.max_wait);
  CHECK(warnings.size() == 4);

  // A cap below the first wait is raised to it.
  RetryPolicy inverted = RetryPolicyFromAnnotations(
      {{"com.openfaas.retry.min_wait", "5s"}, {"com.openfaas.retry.max_wait", "1s"}});
  CHECK(inverted.max_wait == absl::Seconds(5));
}

TEST_CASE("back-off doubles from min_wait and stops at max_wait", "[queue]") {
  RetryPolicy p;  // 10 s .. 120 s
  CHECK(Backoff(p, 1) == absl::Seconds(10));
  CHECK(Backoff(p, 2) == absl::Seconds(20));
  CHECK(Backoff(p, 3) == absl::Seconds(40));
  CHECK(Backoff(p, 4) == absl::Seconds(80));
  CHECK(Backoff(p, 5) == absl::Seconds(120));
  CHECK(Backoff(p, 60) == absl::Seconds(120));  // no overflow on long runs
  p.min_wait = absl::ZeroDuration();
  CHECK(Backoff(p, 7) == absl::ZeroDuration());
}

TEST_CASE("Retry-After: seconds or an HTTP date", "[queue]") {
  const absl::Time now = absl::FromUnixSeconds(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(ParseRetryAfter("7", now) == absl::Seconds(7));
  CHECK(ParseRetryAfter(" 0 ", now) == absl::ZeroDuration());
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now) == absl::Seconds(30));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now) == absl::ZeroDuration());
  CHECK(ParseRetryAfter("", now) < absl::ZeroDuration());
  CHECK(ParseRetryAfter("soon", now) < absl::ZeroDuration());
  CHECK(ParseRetryAfter("-5", now) < absl::ZeroDuration());
}

TEST_CASE("which answers are retried, and after how long", "[queue]") {
  const absl::Time now = absl::FromUnixSeconds(1445412480);
  RetryPolicy p;
  p.attempts = 3;
  auto result = [](int status, bool proxy = false, HeaderList headers = {}) {
    InvokeResult r;
    r.status = status;
    r.proxy_made = proxy;
    r.headers = std::move(headers);
    return r;
  };
  for (int code : {408, 429, 500, 502, 503, 504}) {
    INFO(code);
    RetryDecision d = Decide(p, result(code), 1, now);
    CHECK(d.retry);
    CHECK(d.delay == absl::Seconds(10));
  }
  for (int code : {200, 202, 301, 400, 404, 413, 501}) {
    INFO(code);
    CHECK(!Decide(p, result(code), 1, now).retry);
  }
  CHECK(Decide(p, result(0), 1, now).retry);  // our own listener unreachable
  // The gateway's own 502/503/504 are retried even when the function's codes exclude them.
  RetryPolicy only_429 = p;
  only_429.codes = {429};
  CHECK(Decide(only_429, result(503, true), 1, now).retry);
  CHECK(!Decide(only_429, result(503, false), 1, now).retry);
  CHECK(!Decide(only_429, result(404, true), 1, now).retry);  // function gone: final
  // The last attempt is final.
  CHECK(Decide(p, result(503), 2, now).retry);
  CHECK(Decide(p, result(503), 2, now).delay == absl::Seconds(20));
  CHECK(!Decide(p, result(503), 3, now).retry);
  // Retry-After on 429 and 503 wins over the back-off, capped at max_wait.
  CHECK(Decide(p, result(429, false, {{"Retry-After", "3"}}), 1, now).delay == absl::Seconds(3));
  CHECK(Decide(p, result(503, false, {{"retry-after", "900"}}), 1, now).delay ==
        absl::Seconds(120));
  CHECK(Decide(p, result(500, false, {{"Retry-After", "3"}}), 1, now).delay ==
        absl::Seconds(10));  // not for 500
  CHECK(Decide(p, result(429, false, {{"Retry-After", "junk"}}), 1, now).delay ==
        absl::Seconds(10));
}

TEST_CASE("each function has its own consumer, on subjects no other function's match", "[queue]") {
  CHECK(ConsumerName("echo", "openfaas-fn") == "faasd_echo_openfaas-fn");
  // DNS labels have no '_': two functions never share a name.
  CHECK(ConsumerName("a-b", "c") != ConsumerName("a", "b-c"));
  CHECK(FunctionFilter("echo", "openfaas-fn") == "faas-request.echo.openfaas-fn.*");
  QueuedCall c;
  c.name = "echo";
  c.ns = "openfaas-fn";
  c.call_id = "id-1";
  const std::string subject = CallSubject(c);
  CHECK(subject.rfind("faas-request.echo.openfaas-fn.", 0) == 0);
  CHECK(FunctionKeyOfSubject(subject) == "echo.openfaas-fn");
}

TEST_CASE("queue concurrency comes from the annotation, else the daemon's", "[queue]") {
  std::vector<std::string> warnings;
  CHECK(QueueConcurrencyFromAnnotations({}, 4, &warnings) == 4);
  CHECK(QueueConcurrencyFromAnnotations({{"com.openfaas.queue.concurrency", "1"}}, 4, &warnings) ==
        1);
  CHECK(QueueConcurrencyFromAnnotations({{"com.openfaas.queue.concurrency", "16"}}, 4, &warnings) ==
        16);
  CHECK(warnings.empty());
  for (const char* bad : {"0", "-2", "1025", "two", ""}) {
    CHECK(QueueConcurrencyFromAnnotations({{"com.openfaas.queue.concurrency", bad}}, 4,
                                          &warnings) == 4);
  }
  REQUIRE(warnings.size() == 5);
  CHECK(warnings[0] == "annotation com.openfaas.queue.concurrency=\"0\" ignored");
}

}  // namespace
}  // namespace faasd::queue
