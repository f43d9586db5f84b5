#include "gateway/upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace faasd::gateway {
namespace {

// absl of Debian 12 predates StrContainsIgnoreCase.
bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  return absl::AsciiStrToLower(haystack).find(absl::AsciiStrToLower(needle)) != std::string::npos;
}

constexpr size_t kMaxHeadBytes = 64 << 10;
constexpr size_t kReadChunk = 64 << 10;

int PollTimeoutMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(left) + 1;
  return ms > 1 << 30 ? 1 << 30 : static_cast<int>(ms);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpstreamConnection>> UpstreamConnection::Connect(
    const std::string& ip, int port, absl::Time deadline) {
  const std::string address = absl::StrCat(ip, ":", port);
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    return absl::UnavailableError(absl::StrCat("connect ", address, ": not an IP address"));
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("connect ", address, ": ", std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::unique_ptr<UpstreamConnection> conn(new UpstreamConnection(fd, address));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(absl::StrCat("connect ", address, ": ", std::strerror(errno)));
    }
    if (absl::Status s = conn->WaitFor(POLLOUT, deadline); !s.ok()) {
      if (absl::IsDeadlineExceeded(s)) {
        return absl::UnavailableError(absl::StrCat("connect ", address, ": timed out"));
      }
      return s;
    }
    int err = 0;
    socklen_t err_len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err != 0) {
      return absl::UnavailableError(absl::StrCat("connect ", address, ": ", std::strerror(err)));
    }
  }
  return conn;
}

UpstreamConnection::~UpstreamConnection() { ::close(fd_); }

bool UpstreamConnection::Stale() const {
  pollfd p{fd_, POLLIN, 0};
  // Readable while idle means EOF, an error, or bytes nobody asked for: all unusable.
  return ::poll(&p, 1, 0) != 0;
}

absl::Status UpstreamConnection::WaitFor(short events, absl::Time deadline) {
  for (;;) {
    pollfd p{fd_, events, 0};
    int rc = ::poll(&p, 1, PollTimeoutMs(deadline));
    if (rc > 0) return absl::OkStatus();
    if (rc == 0) {
      if (absl::Now() < deadline) continue;
      return absl::DeadlineExceededError(absl::StrCat("upstream ", address_, ": timed out"));
    }
    if (errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("upstream ", address_, ": poll: ", std::strerror(errno)));
    }
  }
}

absl::Status UpstreamConnection::Write(absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (absl::Status s = WaitFor(POLLOUT, deadline); !s.ok()) return s;
      continue;
    }
    reusable_ = false;
    return absl::UnavailableError(
        absl::StrCat("upstream ", address_, ": write: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> UpstreamConnection::Fill(absl::Time deadline) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > kReadChunk) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  const size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  for (;;) {
    ssize_t n = ::recv(fd_, buf_.data() + old, kReadChunk, 0);
    if (n > 0) {
      buf_.resize(old + static_cast<size_t>(n));
      got_bytes_ = true;
      return true;
    }
    if (n == 0) {
      buf_.resize(old);
      reusable_ = false;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (absl::Status s = WaitFor(POLLIN, deadline); !s.ok()) {
        buf_.resize(old);
        reusable_ = false;
        return s;
      }
      continue;
    }
    buf_.resize(old);
    reusable_ = false;
    return absl::UnavailableError(
        absl::StrCat("upstream ", address_, ": read: ", std::strerror(errno)));
  }
}

absl::StatusOr<std::string> UpstreamConnection::ReadLine(absl::Time deadline) {
  for (;;) {
    size_t eol = buf_.find('\n', pos_);
    if (eol != std::string::npos) {
      size_t end = eol;
      if (end > pos_ && buf_[end - 1] == '\r') --end;
      std::string line = buf_.substr(pos_, end - pos_);
      pos_ = eol + 1;
      return line;
    }
    if (buf_.size() - pos_ > kMaxHeadBytes) {
      reusable_ = false;
      return absl::UnavailableError(absl::StrCat("upstream ", address_, ": header line too long"));
    }
    absl::StatusOr<bool> more = Fill(deadline);
    if (!more.ok()) return more.status();
    if (!*more) {
      return absl::UnavailableError(
          absl::StrCat("upstream ", address_, ": connection closed before the response"));
    }
  }
}

absl::StatusOr<UpstreamResponseHead> UpstreamConnection::ReadHead(bool head_request,
                                                                  absl::Time deadline) {
  for (;;) {
    UpstreamResponseHead head;
    absl::StatusOr<std::string> status_line = ReadLine(deadline);
    if (!status_line.ok()) return status_line.status();
    // "HTTP/1.1 200 OK"
    std::vector<absl::string_view> parts = absl::StrSplit(*status_line, absl::MaxSplits(' ', 2));
    if (parts.size() < 2 || !absl::StartsWith(parts[0], "HTTP/1.") ||
        !absl::SimpleAtoi(parts[1], &head.status) || head.status < 100 || head.status > 999) {
      reusable_ = false;
      return absl::UnavailableError(
          absl::StrCat("upstream ", address_, ": bad status line \"", *status_line, "\""));
    }
    if (parts[0] == "HTTP/1.0") head.keep_alive = false;
    size_t head_bytes = 0;
    for (;;) {
      absl::StatusOr<std::string> line = ReadLine(deadline);
      if (!line.ok()) return line.status();
      if (line->empty()) break;
      head_bytes += line->size();
      if (head_bytes > kMaxHeadBytes) {
        reusable_ = false;
        return absl::UnavailableError(absl::StrCat("upstream ", address_, ": headers too large"));
      }
      size_t colon = line->find(':');
      if (colon == std::string::npos) continue;
      std::string name(absl::StripAsciiWhitespace(absl::string_view(*line).substr(0, colon)));
      std::string value(absl::StripAsciiWhitespace(absl::string_view(*line).substr(colon + 1)));
      if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        uint64_t n = 0;
        if (!absl::SimpleAtoi(value, &n)) {
          reusable_ = false;
          return absl::UnavailableError(
              absl::StrCat("upstream ", address_, ": bad Content-Length \"", value, "\""));
        }
        head.has_length = true;
        head.content_length = n;
      } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
        if (ContainsIgnoreCase(value, "chunked")) head.chunked = true;
      } else if (absl::EqualsIgnoreCase(name, "Connection")) {
        if (ContainsIgnoreCase(value, "close")) head.keep_alive = false;
        if (ContainsIgnoreCase(value, "keep-alive")) head.keep_alive = true;
      }
      head.headers.emplace_back(std::move(name), std::move(value));
    }
    if (head.status >= 100 && head.status < 200) continue;  // 100 Continue and friends

    if (!head.keep_alive) reusable_ = false;
    body_done_ = false;
    chunk_data_ = false;
    if (head_request || head.status == 204 || head.status == 304) {
      framing_ = Framing::kNone;
    } else if (head.chunked) {
      framing_ = Framing::kChunked;
      remaining_ = 0;
    } else if (head.has_length) {
      framing_ = Framing::kLength;
      remaining_ = head.content_length;
    } else {
      framing_ = Framing::kUntilClose;
      reusable_ = false;
    }
    if (framing_ == Framing::kNone || (framing_ == Framing::kLength && remaining_ == 0)) {
      body_done_ = true;
    }
    return head;
  }
}

absl::StatusOr<bool> UpstreamConnection::ReadBody(std::string* out, absl::Time deadline) {
  for (;;) {
    if (body_done_) return false;
    switch (framing_) {
      case Framing::kNone:
        body_done_ = true;
        return false;
      case Framing::kLength:
      case Framing::kUntilClose: {
        if (pos_ == buf_.size()) {
          absl::StatusOr<bool> more = Fill(deadline);
          if (!more.ok()) return more.status();
          if (!*more) {
            if (framing_ == Framing::kUntilClose) {
              body_done_ = true;
              return false;
            }
            return absl::UnavailableError(
                absl::StrCat("upstream ", address_, ": connection closed mid-body"));
          }
        }
        size_t avail = buf_.size() - pos_;
        if (framing_ == Framing::kLength && avail > remaining_) avail = remaining_;
        out->append(buf_, pos_, avail);
        pos_ += avail;
        if (framing_ == Framing::kLength) {
          remaining_ -= avail;
          if (remaining_ == 0) body_done_ = true;
        }
        return true;
      }
      case Framing::kChunked: {
        if (!chunk_data_) {
          absl::StatusOr<std::string> line = ReadLine(deadline);
          if (!line.ok()) return line.status();
          absl::string_view size_text = *line;
          size_t semi = size_text.find(';');
          if (semi != absl::string_view::npos) size_text = size_text.substr(0, semi);
          size_text = absl::StripAsciiWhitespace(size_text);
          uint64_t size = 0;
          if (size_text.empty() || !absl::SimpleHexAtoi(size_text, &size)) {
            reusable_ = false;
            return absl::UnavailableError(
                absl::StrCat("upstream ", address_, ": bad chunk size \"", *line, "\""));
          }
          if (size == 0) {
            // Trailers until an empty line; dropped.
            for (;;) {
              absl::StatusOr<std::string> trailer = ReadLine(deadline);
              if (!trailer.ok()) return trailer.status();
              if (trailer->empty()) break;
            }
            body_done_ = true;
            return false;
          }
          remaining_ = size;
          chunk_data_ = true;
        }
        if (pos_ == buf_.size()) {
          absl::StatusOr<bool> more = Fill(deadline);
          if (!more.ok()) return more.status();
          if (!*more) {
            return absl::UnavailableError(
                absl::StrCat("upstream ", address_, ": connection closed mid-chunk"));
          }
        }
        size_t avail = buf_.size() - pos_;
        if (avail > remaining_) avail = remaining_;
        out->append(buf_, pos_, avail);
        pos_ += avail;
        remaining_ -= avail;
        if (remaining_ == 0) {
          absl::StatusOr<std::string> crlf = ReadLine(deadline);
          if (!crlf.ok()) return crlf.status();
          chunk_data_ = false;
        }
        if (avail > 0) return true;
        break;
      }
    }
  }
}

absl::Status UpstreamConnection::ReadAllBody(std::string* out, size_t limit, absl::Time deadline) {
  if (framing_ == Framing::kLength && remaining_ <= limit) out->reserve(out->size() + remaining_);
  for (;;) {
    absl::StatusOr<bool> more = ReadBody(out, deadline);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    if (out->size() > limit) {
      reusable_ = false;
      return absl::UnavailableError(absl::StrCat("upstream ", address_, ": response too large"));
    }
  }
}

std::unique_ptr<UpstreamConnection> UpstreamPool::Take(const std::string& address) {
  for (;;) {
    std::unique_ptr<UpstreamConnection> conn;
    {
      absl::MutexLock lock(&mu_);
      auto it = idle_.find(address);
      if (it == idle_.end() || it->second.empty()) return nullptr;
      conn = std::move(it->second.back());  // most recently used: least likely timed out
      it->second.pop_back();
    }
    if (!conn->Stale()) return conn;
  }
}

void UpstreamPool::Put(std::unique_ptr<UpstreamConnection> conn) {
  if (!conn || !conn->Reusable()) return;
  absl::MutexLock lock(&mu_);
  auto& stack = idle_[conn->address()];
  if (stack.size() >= kMaxIdlePerAddress) return;
  stack.push_back(std::move(conn));
}

}  // namespace faasd::gateway
