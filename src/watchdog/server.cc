// fwatchdog's HTTP server: accept loop, one thread per connection (keep-alive), health,
// max_inflight, lock file, and the SIGTERM drain.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "watchdog/child_process.h"
#include "watchdog/handlers.h"

namespace faasd::watchdog {
namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  char c = static_cast<char>(sig);
  ssize_t ignored = ::write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

timeval SocketTimeout(absl::Duration d) {
  timeval tv{};
  if (d <= absl::ZeroDuration()) return tv;  // zero: no timeout
  tv.tv_sec = absl::ToInt64Seconds(d);
  tv.tv_usec = absl::ToInt64Microseconds(d - absl::Seconds(tv.tv_sec));
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  return tv;
}

class Server {
 public:
  Server(const Config& config, std::unique_ptr<Handler> handler)
      : config_(config), handler_(std::move(handler)), lock_path_(config.lock_dir + "/.lock") {}

  int Run() {
    ::signal(SIGPIPE, SIG_IGN);
    if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
      WatchdogLog(absl::StrCat("signal pipe: ", std::strerror(errno)));
      return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);

    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(config_.port));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
        ::listen(listener, 1024) < 0) {
      WatchdogLog(absl::StrCat("listen on port ", config_.port, ": ", std::strerror(errno)));
      return 1;
    }
    if (!config_.suppress_lock) ::unlink(lock_path_.c_str());  // stale from a previous run
    WatchdogLog(absl::StrCat("fwatchdog mode: ", ModeName(config_.mode), ", fprocess: \"",
                             config_.fprocess, "\", port: ", config_.port,
                             ", exec_timeout: ", absl::FormatDuration(config_.exec_timeout),
                             ", max_inflight: ", config_.max_inflight));
    absl::Status started = handler_->Start([this] { OnReady(); });
    if (!started.ok()) {
      WatchdogLog(started.message());
      return 1;
    }

    while (true) {
      pollfd fds[2] = {{listener, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
      int rc = ::poll(fds, 2, -1);
      if (rc < 0 && errno == EINTR) continue;
      if (fds[1].revents != 0) break;
      if (fds[0].revents == 0) continue;
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          WatchdogLog(absl::StrCat("accept: ", std::strerror(errno)));
          pollfd p{g_signal_pipe[0], POLLIN, 0};
          ::poll(&p, 1, 100);  // let connections finish rather than spin
        }
        continue;
      }
      std::thread(&Server::ServeConnection, this, fd).detach();
    }

    // SIGTERM: unhealthy first, then stop accepting, then drain.
    draining_.store(true);
    if (!config_.suppress_lock) ::unlink(lock_path_.c_str());
    ::close(listener);
    WatchdogLog(absl::StrCat("SIGTERM: stopped accepting; draining in-flight requests for up to ",
                             absl::FormatDuration(config_.write_timeout)));
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto deadline =
          Clock::now() + std::chrono::nanoseconds(absl::ToInt64Nanoseconds(config_.write_timeout));
      if (!idle_cv_.wait_until(lock, deadline, [this] { return active_ == 0; })) {
        WatchdogLog(absl::StrCat("drain: ", active_, " request(s) still running at write_timeout"));
      }
    }
    handler_->Stop();
    WatchdogLog("exiting");
    return 0;
  }

 private:
  void OnReady() {
    if (!config_.suppress_lock) {
      int fd = ::open(lock_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
      if (fd < 0) {
        WatchdogLog(absl::StrCat("write lock file ", lock_path_, ": ", std::strerror(errno)));
      } else {
        ::close(fd);
        WatchdogLog(absl::StrCat("Writing lock-file to: ", lock_path_));
      }
    }
    ready_.store(true);
  }

  bool Healthy() const {
    return ready_.load() && !draining_.load() && ::access(lock_path_.c_str(), F_OK) == 0;
  }

  void ServeConnection(int fd) {
    // Beast throws only on impossible input (a field over 64 KiB past the head limit) or
    // bad_alloc; either ends this connection, not the watchdog.
    try {
      ServeRequests(fd);
    } catch (const std::exception& e) {
      WatchdogLog(absl::StrCat("connection dropped: ", e.what()));
    }
  }

  void ServeRequests(int fd) {
    Socket client(fd);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval rt = SocketTimeout(config_.read_timeout), wt = SocketTimeout(config_.write_timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wt, sizeof(wt));
    // Each pass serves one request; the connection ends on EOF, an error or no keep-alive.
    while (true) {
      RequestReader reader(&client);
      if (absl::Status read = reader.ReadHead(); !read.ok()) {
        if (RefuseHead(client, read)) LingerClose(client);
        return;
      }
      MessageHead head = ToMessageHead(reader);
      Clock::time_point start = Clock::now();
      ActiveRequest active(this);
      ResponseWriter writer(&client, head, start);
      if (draining_.load()) writer.force_close();
      Dispatch(head, client, reader, writer, start);
      if (!reader.done()) {
        writer.force_close();
        if (!writer.failed()) LingerClose(client);
      }
      if (!writer.keep_alive()) return;
    }
  }

  // Closing a socket with unread input resets the connection, and a reset can destroy the
  // answer before the client reads it: stop sending, then read and drop what the client still
  // sends, for a moment and a bounded amount.
  static void LingerClose(Socket& client) {
    constexpr size_t kMaxDrain = 256 * 1024;
    ::shutdown(client.fd(), SHUT_WR);
    client.set_deadline(Clock::now() + std::chrono::seconds(1));
    for (size_t drained = 0; drained < kMaxDrain;) {
      drained += client.buffered();
      client.buffer().clear();
      if (client.Fill() <= 0) break;
    }
  }

  // Counts a request being answered, for the drain.
  class ActiveRequest {
   public:
    explicit ActiveRequest(Server* server) : server_(server) {
      std::lock_guard<std::mutex> lock(server_->mu_);
      ++server_->active_;
    }
    ~ActiveRequest() {
      std::lock_guard<std::mutex> lock(server_->mu_);
      if (--server_->active_ == 0) server_->idle_cv_.notify_all();
    }
    ActiveRequest(const ActiveRequest&) = delete;
    ActiveRequest& operator=(const ActiveRequest&) = delete;

   private:
    Server* server_;
  };

  // A head that could not be read: 400 (malformed) or 431 (too big), then the connection
  // closes; true when an answer was sent. EOF, timeouts and read errors just close it.
  static bool RefuseHead(Socket& client, const absl::Status& why) {
    int status = absl::IsResourceExhausted(why) ? 431 : absl::IsInvalidArgument(why) ? 400 : 0;
    if (status == 0) return false;
    MessageHead bad;
    bad.keep_alive = false;
    ResponseWriter w(&client, bad, Clock::now());
    return w.Send(status, "text/plain", absl::StrCat("bad request: ", why.message(), "\n"));
  }

  void Dispatch(const MessageHead& head, Socket& client, BodyReader& body, ResponseWriter& writer,
                Clock::time_point start) {
    if (head.path == "/_/health") {
      if (head.method != "GET" && head.method != "HEAD") {
        writer.Send(405, "", "");
      } else if (Healthy()) {
        writer.Send(200, "text/plain", "OK");
      } else {
        writer.Send(503, "text/plain", "not ready\n");
      }
      return;
    }
    int limit = config_.max_inflight;
    if (limit > 0 && inflight_.fetch_add(1) >= limit) {
      inflight_.fetch_sub(1);
      writer.Send(429, "text/plain",
                  absl::StrCat(
                      "Concurrent request limit exceeded. Max concurrent requests: ", limit, "\n"));
      return;
    }
    // The slot is given back before the response's last bytes go out: a client that sends
    // its next request the moment it reads an answer must find it free.
    if (limit > 0) writer.BeforeLastWrite([this] { inflight_.fetch_sub(1); });
    RequestContext ctx{head, client, body, writer, start};
    handler_->Serve(ctx);
    writer.RunBeforeLastWrite();  // a handler that ended without a complete response
  }

  const Config config_;
  std::unique_ptr<Handler> handler_;
  const std::string lock_path_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int> inflight_{0};
  std::mutex mu_;
  std::condition_variable idle_cv_;
  int active_ = 0;  // guarded by mu_: requests being answered, waited for by the drain
};

}  // namespace

int Run(const Config& config) {
  std::unique_ptr<Handler> handler;
  switch (config.mode) {
    case Mode::kHttp:
      handler = MakeHttpProxyHandler(config);
      break;
    case Mode::kStatic:
      handler = MakeStaticHandler(config);
      break;
    default:
      handler = MakeForkHandler(config);
  }
  // The server lives until exit: detached connection threads may still reference it.
  auto* server = new Server(config, std::move(handler));
  return server->Run();
}

}  // namespace faasd::watchdog
