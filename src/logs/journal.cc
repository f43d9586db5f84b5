// JournalSender: lines -> journald's native socket, never blocking (see journal.h).
#include "logs/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace faasd::logs {
namespace {

constexpr size_t kMaxParts = 6;
constexpr absl::string_view kPriority[2] = {"PRIORITY=6\n", "PRIORITY=3\n"};  // info, err
constexpr absl::string_view kWarning = "PRIORITY=4\n";

// KEY=value\n, or for a value holding a newline KEY\n<le64 length>value\n.
void AppendField(absl::string_view key, absl::string_view value, std::string* out) {
  if (value.find('\n') == absl::string_view::npos) {
    absl::StrAppend(out, key, "=", value, "\n");
    return;
  }
  absl::StrAppend(out, key, "\n");
  uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  absl::StrAppend(out, value, "\n");
}

// journald restarted or went away: the socket we connected to is gone.
bool PeerGone(int err) {
  return err == ECONNREFUSED || err == ENOTCONN || err == ENOENT || err == EPIPE ||
         err == ECONNRESET;
}

bool QueueFull(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

}  // namespace

JournalSender::JournalSender(std::vector<std::pair<std::string, std::string>> fields, Options o)
    : options_(std::move(o)) {
  for (const auto& [key, value] : fields) AppendField(key, value, &fields_);
}

JournalSender::~JournalSender() {
  if (fd_ >= 0) ::close(fd_);
}

bool JournalSender::Connect(absl::Time now) {
  next_probe_ = now + options_.probe_interval;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (options_.socket_path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, options_.socket_path.data(), options_.socket_path.size());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return false;
  }
  fd_ = fd;
  return true;
}

void JournalSender::Disconnect(absl::Time now) {
  ::close(fd_);
  fd_ = -1;
  next_probe_ = now;  // journald may be back already (a restart binds the path again)
  dropped_ += backlog_.size();
  dropped_total_ += backlog_.size();
  backlog_.clear();
  backlog_bytes_ = 0;
}

int JournalSender::Send(const absl::string_view* parts, size_t n) {
  struct iovec iov[kMaxParts];
  for (size_t i = 0; i < n; ++i) {
    iov[i].iov_base = const_cast<char*>(parts[i].data());
    iov[i].iov_len = parts[i].size();
  }
  struct msghdr mh = {};
  mh.msg_iov = iov;
  mh.msg_iovlen = n;
  if (::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return 0;
  return errno == EMSGSIZE ? SendAsMemfd(parts, n) : errno;
}

// Bigger than a datagram may be (the socket's send buffer): journald reads the entry from a
// sealed memfd passed along an empty datagram.
int JournalSender::SendAsMemfd(const absl::string_view* parts, size_t n) {
  const int mfd = ::memfd_create("faasd-logger-entry", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) return errno;
  int err = 0;
  for (size_t i = 0; i < n && err == 0; ++i) {
    for (absl::string_view p = parts[i]; !p.empty() && err == 0;) {
      const ssize_t w = ::write(mfd, p.data(), p.size());
      if (w < 0 && errno != EINTR) err = errno;
      if (w > 0) p.remove_prefix(static_cast<size_t>(w));
    }
  }
  if (err == 0 &&
      ::fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    err = errno;
  }
  if (err == 0) {
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr mh = {};
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &mfd, sizeof(int));
    if (::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) err = errno;
  }
  ::close(mfd);
  return err;
}

bool JournalSender::Deliver(const absl::string_view* parts, size_t n, absl::Time now) {
  // While backlogged, journald's queue is full until fd() polls writable: trying each line
  // would cost a failing sendmsg per line.
  if (backlog_.empty()) {
    int err = Send(parts, n);
    if (PeerGone(err)) {
      Disconnect(now);
      if (!Connect(now)) return false;
      err = Send(parts, n);
    }
    if (err == 0) {
      ++sent_;
      return true;
    }
    if (!QueueFull(err)) return false;
  }
  size_t size = 0;
  for (size_t i = 0; i < n; ++i) size += parts[i].size();
  if (backlog_bytes_ + size > options_.max_backlog_bytes) return false;
  std::string& entry = backlog_.emplace_back();
  entry.reserve(size);
  for (size_t i = 0; i < n; ++i) entry.append(parts[i].data(), parts[i].size());
  backlog_bytes_ += size;
  return true;
}

void JournalSender::Line(Stream s, absl::string_view text, absl::Time now) {
  if (fd_ < 0 && (now < next_probe_ || !Connect(now))) return;
  std::string length;  // MESSAGE in the binary-safe form
  absl::string_view parts[kMaxParts] = {kPriority[s == Stream::kStderr], fields_, "MESSAGE=", text,
                                        "\n"};
  if (text.find('\n') != absl::string_view::npos) {
    AppendField("MESSAGE", text, &length);
    parts[2] = length;
    parts[3] = parts[4] = "";
  }
  if (!Deliver(parts, 5, now)) {
    ++dropped_;
    ++dropped_total_;
  }
  if (dropped_ > 0 && backlog_.empty() && fd_ >= 0) ReportDrops();
}

void JournalSender::SendBacklog(absl::Time now) {
  while (!backlog_.empty() && fd_ >= 0) {
    const absl::string_view entry = backlog_.front();
    const int err = Send(&entry, 1);
    if (QueueFull(err)) return;
    if (PeerGone(err)) {
      Disconnect(now);
      return;
    }
    backlog_bytes_ -= entry.size();
    backlog_.pop_front();
    if (err == 0) {
      ++sent_;
    } else {
      ++dropped_;
      ++dropped_total_;
    }
  }
  if (dropped_ > 0 && fd_ >= 0) ReportDrops();
}

void JournalSender::ReportDrops() {
  const std::string message =
      absl::StrCat("MESSAGE=faasd-logger: ", dropped_,
                   " lines not copied to the journal (journald's queue was full or it went away; "
                   "the function's log files have them)\n");
  const absl::string_view parts[] = {kWarning, fields_, message};
  if (Send(parts, 3) == 0) dropped_ = 0;
}

}  // namespace faasd::logs
