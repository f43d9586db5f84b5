// Fork-per-request modes: classic (buffered, upstream classic-watchdog responses), serializing
// (buffered, of-watchdog) and streaming (of-watchdog: stdin and stdout streamed).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "watchdog/child_process.h"
#include "watchdog/handlers.h"

namespace faasd::watchdog {
namespace {

constexpr size_t kIoChunk = 64 * 1024;
// Buffered modes hold the body; past this the request is refused rather than the box OOMed.
constexpr size_t kMaxBufferedBody = 256u << 20;

bool WriteFd(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads the whole request body into out; false when it is malformed, cut or too big.
bool ReadWholeBody(BodyReader& body, std::string* out) {
  char buf[kIoChunk];
  while (!body.done()) {
    ssize_t n = body.Read(buf, sizeof(buf));
    if (n < 0) return false;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxBufferedBody) return false;
  }
  return true;
}

class ForkHandler : public Handler {
 public:
  explicit ForkHandler(const Config& config)
      : config_(config), argv_(SplitProcess(config.fprocess)) {}

  void Serve(RequestContext& ctx) override {
    const Mode mode = config_.mode;
    ContinueIfExpected(ctx);
    Clock::time_point deadline =
        config_.exec_timeout > absl::ZeroDuration()
            ? ctx.start + std::chrono::nanoseconds(absl::ToInt64Nanoseconds(config_.exec_timeout))
            : kNoDeadline;

    // Input held in memory (buffered modes, or a small body already read with the head) is fed
    // from the poll loop; anything else is pumped from the socket by a helper thread.
    std::string input;
    bool input_in_memory = false;
    if (mode == Mode::kSerializing || (mode == Mode::kClassic && config_.marshal_request) ||
        ctx.body.FullyBuffered()) {
      if (!ReadWholeBody(ctx.body, &input)) {
        ctx.writer.force_close();
        ctx.writer.Send(400, "text/plain", "request body: truncated, malformed or too large\n");
        return;
      }
      if (mode == Mode::kClassic && config_.marshal_request) {
        input = MarshalRequestJson(ctx.head, input);
      }
      input_in_memory = true;
    }

    SpawnOptions options;
    options.argv = argv_;
    options.env = CgiEnvironment(config_, ctx.head);
    options.merge_stderr = mode == Mode::kClassic && config_.combine_output;
    auto spawned = SpawnChild(options);
    if (!spawned.ok()) {
      WatchdogLog(spawned.status().message());
      ctx.writer.force_close();
      ctx.writer.Send(500, "text/plain", absl::StrCat(spawned.status().message(), "\n"));
      return;
    }
    Child& child = **spawned;

    std::atomic<bool> pump_done{false};
    std::thread pump;
    size_t input_pos = 0;
    if (input_in_memory) {
      if (input.empty()) {
        child.CloseStdin();
      } else {
        ::fcntl(child.stdin_fd(), F_SETFL, O_NONBLOCK);
      }
    } else {
      pump = std::thread([&] {
        char buf[kIoChunk];
        int fd = child.stdin_fd();
        while (true) {
          ssize_t n = ctx.body.Read(buf, sizeof(buf));
          if (n <= 0) break;
          if (!WriteFd(fd, buf, static_cast<size_t>(n))) break;  // function closed stdin
        }
        child.CloseStdin();
        pump_done = true;
      });
    }

    std::string output;  // buffered modes
    LineLogger err_log("stderr", config_.prefix_logs, config_.log_buffer_size);
    bool timed_out = false;
    bool client_gone = false;
    char buf[kIoChunk];
    while (child.stdout_fd() >= 0 || child.stderr_fd() >= 0) {
      pollfd fds[3];
      int nfds = 0;
      int out_i = -1, err_i = -1, in_i = -1;
      if (child.stdout_fd() >= 0) {
        out_i = nfds;
        fds[nfds++] = {child.stdout_fd(), POLLIN, 0};
      }
      if (child.stderr_fd() >= 0) {
        err_i = nfds;
        fds[nfds++] = {child.stderr_fd(), POLLIN, 0};
      }
      if (input_in_memory && child.stdin_fd() >= 0) {
        in_i = nfds;
        fds[nfds++] = {child.stdin_fd(), POLLOUT, 0};
      }
      int timeout_ms = -1;
      if (deadline != kNoDeadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          timed_out = true;
          break;
        }
        timeout_ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
      }
      int rc = ::poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) break;
      if (rc == 0) continue;  // deadline re-checked above
      if (in_i >= 0 && fds[in_i].revents != 0) {
        ssize_t w = ::write(child.stdin_fd(), input.data() + input_pos, input.size() - input_pos);
        if (w > 0) input_pos += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || input_pos == input.size()) {
          child.CloseStdin();  // done, or the function closed its stdin (EPIPE)
        }
      }
      if (err_i >= 0 && fds[err_i].revents != 0) {
        ssize_t n = ::read(child.stderr_fd(), buf, sizeof(buf));
        if (n > 0) {
          err_log.Feed(absl::string_view(buf, static_cast<size_t>(n)));
        } else if (n == 0 || errno != EINTR) {
          child.CloseStderr();
        }
      }
      if (out_i >= 0 && fds[out_i].revents != 0) {
        ssize_t n = ::read(child.stdout_fd(), buf, sizeof(buf));
        if (n > 0) {
          absl::string_view data(buf, static_cast<size_t>(n));
          if (mode == Mode::kStreaming) {
            if (!ctx.writer.head_written()) {
              ctx.writer.WriteHead(200, {{"Content-Type", ResponseType(ctx.head)}}, -1);
            }
            if (!ctx.writer.WriteBody(data)) {
              client_gone = true;  // nobody to answer: stop the work
              break;
            }
          } else {
            output.append(data.data(), data.size());
          }
        } else if (n == 0 || errno != EINTR) {
          child.CloseStdout();
        }
      }
    }
    err_log.Flush();

    if (timed_out || client_gone) child.KillGroup(SIGKILL);
    std::optional<int> status = child.Wait(timed_out || client_gone ? kNoDeadline : deadline);
    if (!status.has_value()) {  // closed its stdout but kept running past exec_timeout
      timed_out = true;
      child.KillGroup(SIGKILL);
      status = child.Wait(kNoDeadline);
    }
    if (pump.joinable()) {
      if (!pump_done) ::shutdown(ctx.client.fd(), SHUT_RD);  // unblock a read from a slow client
      pump.join();
    }
    if (!ctx.body.done()) ctx.writer.force_close();  // unread body: the stream is out of sync

    const bool success = !timed_out && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
    std::string why =
        timed_out ? absl::StrCat("exec_timeout ", absl::FormatDuration(config_.exec_timeout),
                                 " exceeded, killed process group")
                  : DescribeWaitStatus(*status);
    if (!success) WatchdogLog(absl::StrCat(config_.fprocess, ": ", why));
    if (client_gone) {
      ctx.writer.force_close();
      return;
    }
    if (ctx.body.failed()) {
      // Malformed (a bad chunk) or cut short: the process saw an early EOF, so its answer is
      // not the answer to this request.
      WatchdogLog(absl::StrCat(ctx.head.method, " ", ctx.head.path,
                               ": request body truncated or malformed"));
      ctx.writer.force_close();
      if (!ctx.writer.head_written()) {
        ctx.writer.Send(400, "text/plain", "request body: truncated or malformed\n");
      }
      return;
    }
    if (mode == Mode::kStreaming && ctx.writer.head_written()) {
      // The status is gone already; cutting the chunked stream short tells the client.
      if (success) {
        ctx.writer.Finish();
      } else {
        ctx.writer.force_close();
      }
      return;
    }
    if (mode == Mode::kClassic) {
      if (timed_out) {
        ctx.writer.Send(408, "text/plain", "Killed process.\n");
      } else if (!success) {
        ctx.writer.Send(500, "text/plain", absl::StrCat(why, "\n", output));
      } else {
        std::string type = config_.content_type;
        if (type.empty()) {
          if (const std::string* ct = ctx.head.Find("Content-Type")) type = *ct;
        }
        ctx.writer.Send(200, type, output);
      }
      return;
    }
    if (timed_out) {
      ctx.writer.Send(504, "text/plain", absl::StrCat(why, "\n"));
    } else if (!success) {
      ctx.writer.Send(500, "text/plain", absl::StrCat(why, "\n"));
    } else {
      ctx.writer.Send(200, ResponseType(ctx.head), output);
    }
  }

 private:
  std::string ResponseType(const MessageHead& head) const {
    if (!config_.content_type.empty()) return config_.content_type;
    if (const std::string* ct = head.Find("Content-Type")) return *ct;
    return "application/octet-stream";
  }

  const Config config_;
  const std::vector<std::string> argv_;
};

}  // namespace

std::unique_ptr<Handler> MakeForkHandler(const Config& config) {
  return std::make_unique<ForkHandler>(config);
}

}  // namespace faasd::watchdog
