// http mode: fprocess runs once as a long-lived server; requests are reverse-proxied to it.
// A supervisor thread restarts it with backoff when it dies. While it is down requests get
// 503 at once; a refused connection gets 502; exec_timeout gets 504. Bodies are streamed both
// ways, never held whole.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "watchdog/child_process.h"
#include "watchdog/handlers.h"

namespace faasd::watchdog {
namespace {

constexpr size_t kIoChunk = 64 * 1024;
constexpr size_t kMaxIdleConnections = 64;
constexpr int kMaxInterimResponses = 8;

// Reads a body that is already buffered whole into out (at most cap bytes).
bool ReadUpTo(BodyReader& body, char* out, size_t cap, size_t* n) {
  while (!body.done() && *n < cap) {
    ssize_t r = body.Read(out + *n, cap - *n);
    if (r < 0) return false;
    if (r == 0) break;
    *n += static_cast<size_t>(r);
  }
  return body.done();
}

Clock::duration ToClock(absl::Duration d) {
  return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

// Drains a child's output pipe into log lines until EOF.
void LogStream(int fd, const char* name, const Config& config) {
  LineLogger log(name, config.prefix_logs, config.log_buffer_size);
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    log.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  }
}

class HttpProxyHandler : public Handler {
 public:
  explicit HttpProxyHandler(const Config& config) : config_(config) {
    std::memset(&addr_, 0, sizeof(addr_));
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<uint16_t>(config.upstream_port));
    ::inet_pton(AF_INET, config.upstream_host.c_str(), &addr_.sin_addr);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~HttpProxyHandler() override {
    Stop();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  absl::Status Start(std::function<void()> on_ready) override {
    on_ready_ = std::move(on_ready);
    supervisor_ = std::thread([this] { Supervise(); });
    return absl::OkStatus();
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
    (void)ignored;
    if (supervisor_.joinable()) supervisor_.join();
    DropPool();
  }

  void Serve(RequestContext& ctx) override {
    if (!up_.load(std::memory_order_acquire)) {
      ctx.writer.force_close();
      ctx.writer.Send(503, "text/plain",
                      absl::StrCat("upstream ", config_.upstream_url, " (", config_.fprocess,
                                   ") is not running; restarting\n"));
      return;
    }
    Clock::time_point deadline = config_.exec_timeout > absl::ZeroDuration()
                                     ? ctx.start + ToClock(config_.exec_timeout)
                                     : kNoDeadline;
    std::unique_ptr<Socket> up = Acquire();
    if (up == nullptr) {
      ctx.writer.force_close();
      ctx.writer.Send(502, "text/plain",
                      absl::StrCat("connect upstream ", config_.upstream_url, ": ",
                                   std::strerror(errno), "\n"));
      return;
    }
    up->set_deadline(deadline);
    ContinueIfExpected(ctx);
    if (!SendRequest(ctx, *up)) {
      Fail(ctx, ctx.body.failed() ? 400 : 502, "send request");
      return;
    }
    std::optional<ResponseReader> resp;
    if (absl::Status read = ReadFinalResponseHead(ctx, *up, resp); !read.ok()) {
      Fail(ctx, up->timed_out() ? 504 : 502, absl::StrCat("read response: ", read.message()));
      return;
    }
    if (RelayResponse(ctx, *resp, *up) && resp->keep_alive() && !up->timed_out()) {
      Release(std::move(up));
    }
  }

 private:
  // The client's request to the upstream: hop-by-hop headers dropped, framing re-stated, body
  // streamed (a small body that came with the head leaves with it in one write).
  bool SendRequest(RequestContext& ctx, Socket& up) {
    const MessageHead& req = ctx.head;
    http::request<http::buffer_body> out;
    out.method_string({req.method.data(), req.method.size()});
    out.target({req.target.data(), req.target.size()});
    out.version(11);
    bool has_host = false;
    for (const Header& h : req.headers) {
      if (IsHopByHop(h.name) || absl::EqualsIgnoreCase(h.name, "Content-Length") ||
          absl::EqualsIgnoreCase(h.name, "Expect")) {
        continue;
      }
      has_host = has_host || absl::EqualsIgnoreCase(h.name, "Host");
      out.insert(h.name, h.value);
    }
    if (!has_host) out.set(http::field::host, config_.upstream_host);
    if (ctx.body.chunked()) {
      out.chunked(true);
    } else if (ctx.body.length() >= 0) {
      out.content_length(static_cast<uint64_t>(ctx.body.length()));
    }
    http::request_serializer<http::buffer_body> serializer(out);
    boost::system::error_code ec;
    char buf[kIoChunk];
    if (!ctx.body.chunked() && ctx.body.FullyBuffered() &&
        ctx.body.length() <= static_cast<int64_t>(kIoChunk)) {
      size_t n = 0;
      if (!ReadUpTo(ctx.body, buf, sizeof(buf), &n)) return false;
      out.body() = {buf, n, false};
      http::write(up, serializer, ec);
      return !ec;
    }
    http::write_header(up, serializer, ec);
    while (!ec && !ctx.body.done()) {
      ssize_t n = ctx.body.Read(buf, sizeof(buf));
      if (n < 0) return false;
      if (n == 0) continue;
      out.body() = {buf, static_cast<size_t>(n), true};
      http::write(up, serializer, ec);
      if (ec == http::error::need_buffer) ec = {};
    }
    if (ec) return false;
    out.body() = {nullptr, 0, false};
    http::write(up, serializer, ec);  // the final chunk, when chunked
    return !ec;
  }

  // Reads the upstream's response head, skipping interim 1xx responses (a few at most).
  absl::Status ReadFinalResponseHead(RequestContext& ctx, Socket& up,
                                     std::optional<ResponseReader>& resp) {
    for (int i = 0; i < kMaxInterimResponses; ++i) {
      resp.emplace(&up);
      if (ctx.head.method == "HEAD") resp->SkipBody();
      if (absl::Status read = resp->ReadHead(); !read.ok()) return read;
      if (resp->head().result_int() >= 200) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxInterimResponses, " interim responses"));
  }

  // Relays the upstream's response to the client; true when the upstream connection ended
  // the response cleanly and may serve another request.
  bool RelayResponse(RequestContext& ctx, ResponseReader& resp, Socket& up) {
    const MessageHead& req = ctx.head;
    const http::response_header<>& head = resp.head();
    std::vector<Header> headers;
    for (const auto& field : head) {
      absl::string_view name = ToAbsl(field.name_string());
      if (IsHopByHop(name) || absl::EqualsIgnoreCase(name, "Content-Length") ||
          absl::EqualsIgnoreCase(name, "X-Duration-Seconds")) {
        continue;
      }
      headers.push_back({std::string(name), std::string(ToAbsl(field.value()))});
    }
    const int status = static_cast<int>(head.result_int());
    const absl::string_view reason = ToAbsl(head.reason());
    char buf[kIoChunk];
    if (req.method != "HEAD" && resp.FullyBuffered() &&
        resp.length() <= static_cast<int64_t>(kIoChunk)) {
      // Common case: a small body that came with the head; one write to the client.
      size_t n = 0;
      if (!ReadUpTo(resp, buf, sizeof(buf), &n)) return CutShort(ctx, up);
      ctx.writer.Send(status, headers, absl::string_view(buf, n), reason);
      return true;
    }
    const bool bodyless = status == 204 || status == 304;
    int64_t length = resp.length();
    if (bodyless && req.method != "HEAD") length = 0;
    if (!ctx.writer.WriteHead(status, headers, length, reason)) {
      return false;  // client gone; the upstream connection is dropped with its response
    }
    while (!resp.done()) {
      ssize_t n = resp.Read(buf, sizeof(buf));
      if (n < 0) return CutShort(ctx, up);
      if (n > 0 && !ctx.writer.WriteBody(absl::string_view(buf, static_cast<size_t>(n)))) {
        return false;
      }
    }
    ctx.writer.Finish();
    return true;
  }

  // Cut mid-body (timeout or upstream died): the client must see a broken response.
  bool CutShort(RequestContext& ctx, Socket& up) {
    WatchdogLog(absl::StrCat("upstream ", config_.upstream_url, " ", ctx.head.method, " ",
                             ctx.head.path, ": response body ",
                             up.timed_out() ? "timed out" : "cut short"));
    ctx.writer.force_close();
    return false;
  }

  void Fail(RequestContext& ctx, int status, absl::string_view what) {
    std::string msg = absl::StrCat("upstream ", config_.upstream_url, " ", ctx.head.method, " ",
                                   ctx.head.path, ": ", what);
    if (status == 504) {
      msg = absl::StrCat(msg, " (exec_timeout ", absl::FormatDuration(config_.exec_timeout), ")");
    }
    WatchdogLog(msg);
    ctx.writer.force_close();
    if (!ctx.writer.head_written()) ctx.writer.Send(status, "text/plain", absl::StrCat(msg, "\n"));
  }

  std::unique_ptr<Socket> Connect() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)) < 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
      return nullptr;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return std::make_unique<Socket>(fd);
  }

  std::unique_ptr<Socket> Acquire() {
    while (true) {
      std::unique_ptr<Socket> s;
      {
        std::lock_guard<std::mutex> lock(pool_mu_);
        if (idle_.empty()) break;
        s = std::move(idle_.back());
        idle_.pop_back();
      }
      // An idle upstream connection that is readable was closed (or misbehaved): discard it.
      pollfd p{s->fd(), POLLIN, 0};
      if (::poll(&p, 1, 0) == 0) return s;
    }
    return Connect();
  }

  void Release(std::unique_ptr<Socket> s) {
    if (s->buffered() > 0) return;  // extra bytes after the response: not reusable
    s->set_deadline(kNoDeadline);
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (idle_.size() < kMaxIdleConnections && up_.load()) idle_.push_back(std::move(s));
  }

  void DropPool() {
    std::vector<std::unique_ptr<Socket>> old;
    std::lock_guard<std::mutex> lock(pool_mu_);
    old.swap(idle_);
  }

  // Waits on the wake eventfd up to d; true when Stop() was called.
  bool WaitStop(Clock::duration d, int also_fd = -1) {
    pollfd p[2] = {{wake_fd_, POLLIN, 0}, {also_fd, POLLIN, 0}};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    ::poll(p, also_fd >= 0 ? 2 : 1, static_cast<int>(std::max<int64_t>(0, ms)));
    return stopping_.load();
  }

  void Supervise() {
    const auto min_backoff = std::chrono::milliseconds(100);
    const auto max_backoff = std::chrono::seconds(5);
    Clock::duration backoff = min_backoff;
    while (!stopping_.load()) {
      SpawnOptions options;
      options.argv = SplitProcess(config_.fprocess);
      Config plain = config_;
      plain.cgi_headers = false;  // the long-lived process gets the watchdog's env only
      options.env = CgiEnvironment(plain, MessageHead{});
      options.pipe_stdin = false;
      auto spawned = SpawnChild(options);
      if (!spawned.ok()) {
        WatchdogLog(absl::StrCat(
            "http mode: ", spawned.status().message(), "; retrying in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count(), "ms"));
        if (WaitStop(backoff)) break;
        backoff = std::min<Clock::duration>(backoff * 2, max_backoff);
        continue;
      }
      std::unique_ptr<Child> child = std::move(*spawned);
      WatchdogLog(absl::StrCat("Started ", config_.fprocess, " (pid ", child->pid(),
                               "), proxying to ", config_.upstream_url));
      Clock::time_point started = Clock::now();
      int out_fd = child->stdout_fd(), err_fd = child->stderr_fd();
      std::thread out_log([this, out_fd] { LogStream(out_fd, "stdout", config_); });
      std::thread err_log([this, err_fd] { LogStream(err_fd, "stderr", config_); });

      // Ready once the upstream accepts a connection (checked every 10 ms while it lives).
      while (!stopping_.load() && !child->Wait(Clock::now()).has_value()) {
        if (Connect() != nullptr) {
          up_.store(true, std::memory_order_release);
          if (!ready_signalled_.exchange(true) && on_ready_) on_ready_();
          break;
        }
        if (WaitStop(std::chrono::milliseconds(10), child->pidfd())) break;
      }
      // Serve until it exits or we stop.
      while (!stopping_.load() && !child->Wait(Clock::now()).has_value()) {
        WaitStop(child->pidfd() >= 0 ? Clock::duration(std::chrono::hours(1))
                                     : Clock::duration(std::chrono::milliseconds(50)),
                 child->pidfd());
      }
      up_.store(false, std::memory_order_release);
      DropPool();
      if (stopping_.load() && !child->exited()) {
        child->KillGroup(SIGTERM);
        if (!child->Wait(Clock::now() + std::chrono::seconds(5)).has_value()) {
          child->KillGroup(SIGKILL);
          child->Wait(kNoDeadline);
        }
      }
      std::optional<int> status = child->Wait(kNoDeadline);
      child->KillGroup(SIGKILL);  // stragglers in its group would hold the port or pipes
      child->CloseStdout();
      child->CloseStderr();
      out_log.join();
      err_log.join();
      if (stopping_.load()) break;
      if (Clock::now() - started > std::chrono::seconds(10)) backoff = min_backoff;
      WatchdogLog(absl::StrCat(
          "http mode: ", config_.fprocess, " exited (", DescribeWaitStatus(status.value_or(0)),
          "); restarting in ",
          std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count(), "ms"));
      if (WaitStop(backoff)) break;
      backoff = std::min<Clock::duration>(backoff * 2, max_backoff);
    }
  }

  const Config config_;
  sockaddr_in addr_;
  int wake_fd_ = -1;
  std::function<void()> on_ready_;
  std::thread supervisor_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> up_{false};
  std::atomic<bool> ready_signalled_{false};
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Socket>> idle_;  // guarded by pool_mu_
};

}  // namespace

std::unique_ptr<Handler> MakeHttpProxyHandler(const Config& config) {
  return std::make_unique<HttpProxyHandler>(config);
}

}  // namespace faasd::watchdog
