// faasd-logger: the per-task log capture containerd's shim runs for a `binary://` stdio URI.
//
// The shim's contract (containerd 1.6, pkg/process/io.go NewBinaryIO / NewBinaryCmd):
//   - fd 3 is the task's stdout, fd 4 its stderr (read ends of pipes), fd 5 a pipe the shim
//     reads until we close it: the task is created only once we are ready.
//   - env CONTAINER_ID and CONTAINER_NAMESPACE; no PATH; stdin/stdout/stderr are /dev/null.
//   - the URI's query parameters arrive as argv pairs "key value" in random order (a Go map).
//   - when the task is deleted the shim closes its ends of the pipes, sends SIGTERM and kills us
//     after 12 s.
// The shim owns this process, so it outlives faasd restarts; a restarted task gets a new logger
// that appends to the same log.
//
// We never exit before our pipes are closed: with no reader the function would get EPIPE (or
// SIGPIPE) on its next write. Bad arguments or an unwritable log directory only cost the output.
//
// Query parameters (see logs::LoggerUri): dir, max-bytes, files (the rotated log), ns, fn and
// journal=auto|off. With journal=auto (or none, as in URIs of an older faasd) each line is also
// copied to journald when its socket is there (logs::JournalSender), tagged
// SYSLOG_IDENTIFIER=<ns>:<fn>, FAASD_NAMESPACE, FAASD_FUNCTION and CONTAINER_ID; ns and fn
// default to CONTAINER_NAMESPACE and CONTAINER_ID, the identifier faasd's own logger uses.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "logs/journal.h"
#include "logs/logs.h"

namespace {

using faasd::logs::JournalSender;
using faasd::logs::LogWriter;
using faasd::logs::RotationOptions;
using faasd::logs::Stream;

constexpr int kStdoutFd = 3, kStderrFd = 4, kReadyFd = 5;
// After SIGTERM, keep draining what the pipes still hold for at most this long.
constexpr absl::Duration kDrainAfterTerm = absl::Seconds(2);

std::map<std::string, std::string> ArgPairs(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  return args;
}

std::string Get(const std::map<std::string, std::string>& m, const std::string& k,
                const char* def = "") {
  auto it = m.find(k);
  return it == m.end() ? (def != nullptr ? def : "") : it->second;
}

// The journald copy, unless the query turns it off.
std::unique_ptr<JournalSender> MakeJournalSender(const std::map<std::string, std::string>& args,
                                                 const std::string& id) {
  if (Get(args, "journal") == "off") return nullptr;
  const std::string ns = Get(args, "ns", std::getenv("CONTAINER_NAMESPACE"));
  const std::string fn = Get(args, "fn", id.c_str());
  return std::make_unique<JournalSender>(
      std::vector<std::pair<std::string, std::string>>{{"SYSLOG_IDENTIFIER", ns + ":" + fn},
                                                       {"FAASD_NAMESPACE", ns},
                                                       {"FAASD_FUNCTION", fn},
                                                       {"CONTAINER_ID", id}},
      JournalSender::Options{});
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  sigprocmask(SIG_BLOCK, &term, nullptr);
  const int sig_fd = ::signalfd(-1, &term, SFD_NONBLOCK | SFD_CLOEXEC);

  const std::map<std::string, std::string> args = ArgPairs(argc, argv);
  RotationOptions options;
  uint64_t max_bytes = 0;
  int files = 0;
  if (absl::SimpleAtoi(Get(args, "max-bytes"), &max_bytes)) options.max_bytes = max_bytes;
  if (absl::SimpleAtoi(Get(args, "files"), &files)) options.files = files;
  if (!faasd::logs::CheckRotationOptions(options).ok()) options = RotationOptions{};
  const char* id_env = std::getenv("CONTAINER_ID");
  const std::string id = id_env != nullptr ? id_env : "";
  const std::string dir = Get(args, "dir");
  // Without an absolute directory there is nowhere to write: drain anyway (see above).
  const bool capture = !dir.empty() && dir[0] == '/';
  std::unique_ptr<JournalSender> journal = capture ? MakeJournalSender(args, id) : nullptr;
  LogWriter writer(dir, options, id, journal.get());

  struct pollfd fds[4] = {
      {kStdoutFd, POLLIN, 0}, {kStderrFd, POLLIN, 0}, {sig_fd, POLLIN, 0}, {-1, POLLOUT, 0}};
  for (int i = 0; i < 2; ++i) {
    if (::fcntl(fds[i].fd, F_GETFD) < 0) fds[i].fd = -1;  // run by hand without that stream
  }
  ::close(kReadyFd);

  char buf[64 << 10];
  absl::Time deadline = absl::InfiniteFuture();
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    const int timeout = deadline == absl::InfiniteFuture()
                            ? -1
                            : static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1;
    // journald's queue was full: its backlog goes out as it makes room.
    fds[3].fd = journal != nullptr && journal->backlogged() ? journal->fd() : -1;
    int n = ::poll(fds, 4, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (fds[3].fd >= 0 && fds[3].revents != 0) journal->SendBacklog(absl::Now());
    if (fds[2].fd >= 0 && (fds[2].revents & POLLIN)) {
      // The shim closed its ends already; what is buffered drains quickly.
      deadline = absl::Now() + kDrainAfterTerm;
      ::close(fds[2].fd);
      fds[2].fd = -1;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const Stream stream = i == 0 ? Stream::kStdout : Stream::kStderr;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got > 0) {
        if (capture)
          (void)writer.Consume(stream, absl::string_view(buf, static_cast<size_t>(got)),
                               absl::Now());
        continue;
      }
      if (capture) (void)writer.Flush(stream, absl::Now());
      ::close(fds[i].fd);
      fds[i].fd = -1;
    }
  }
  if (capture) {
    (void)writer.Flush(Stream::kStdout, absl::Now());
    (void)writer.Flush(Stream::kStderr, absl::Now());
  }
  for (const absl::Time end = absl::Now() + kDrainAfterTerm;
       journal != nullptr && journal->backlogged() && absl::Now() < end;) {
    struct pollfd out = {journal->fd(), POLLOUT, 0};
    if (::poll(&out, 1, static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now())) + 1) < 0 &&
        errno != EINTR) {
      break;
    }
    journal->SendBacklog(absl::Now());
  }
  return 0;
}
