#include "watchdog/http_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace faasd::watchdog {
namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  return absl::AsciiStrToLower(haystack).find(std::string(needle)) != std::string::npos;
}

void FillFraming(MessageHead* head) {
  head->keep_alive = head->http11;
  for (const Header& h : head->headers) {
    if (absl::EqualsIgnoreCase(h.name, "Transfer-Encoding")) {
      head->chunked = ContainsIgnoreCase(h.value, "chunked");
    } else if (absl::EqualsIgnoreCase(h.name, "Content-Length")) {
      int64_t n = -1;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(h.value), &n) && n >= 0) {
        head->content_length = n;
      } else {
        head->content_length = -2;  // malformed: caller rejects
      }
    } else if (absl::EqualsIgnoreCase(h.name, "Connection")) {
      if (ContainsIgnoreCase(h.value, "close")) head->keep_alive = false;
      if (ContainsIgnoreCase(h.value, "keep-alive")) head->keep_alive = true;
    } else if (absl::EqualsIgnoreCase(h.name, "Expect")) {
      head->expect_continue =
          absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(h.value), "100-continue");
    }
  }
}

absl::Status ParseHeaders(absl::string_view block, MessageHead* head) {
  for (absl::string_view line : absl::StrSplit(block, "\r\n")) {
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(absl::StrCat("malformed header line \"", line, "\""));
    }
    head->headers.push_back({std::string(absl::StripAsciiWhitespace(line.substr(0, colon))),
                             std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)))});
  }
  FillFraming(head);
  if (head->content_length == -2) return absl::InvalidArgumentError("malformed Content-Length");
  return absl::OkStatus();
}

}  // namespace

const std::string* MessageHead::Find(absl::string_view name) const {
  for (const Header& h : headers) {
    if (absl::EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

bool Socket::WaitFor(short events) {
  if (deadline_ == kNoDeadline) return true;  // blocking call; SO_*TIMEO bound it
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  if (left.count() <= 0) {
    timed_out_ = true;
    return false;
  }
  pollfd p{fd_, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30)));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    timed_out_ = true;
    return false;
  }
  return rc > 0;
}

bool Socket::Fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  if (!WaitFor(POLLIN)) return false;
  size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  ssize_t n;
  do {
    n = ::recv(fd_, buf_.data() + old, kReadChunk, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out_ = true;
  buf_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
  return n > 0;
}

ssize_t Socket::ReadSome(char* out, size_t n) {
  if (buffered() == 0) {
    // Large reads bypass the buffer so a streamed body is copied once.
    if (n >= kReadChunk) {
      if (!WaitFor(POLLIN)) return -1;
      ssize_t r;
      do {
        r = ::recv(fd_, out, n, 0);
      } while (r < 0 && errno == EINTR);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out_ = true;
      return r;
    }
    if (!Fill()) return timed_out_ ? -1 : 0;
  }
  size_t take = std::min(n, buffered());
  std::memcpy(out, buf_.data() + pos_, take);
  pos_ += take;
  return static_cast<ssize_t>(take);
}

bool Socket::ReadLine(std::string* line, size_t max) {
  while (true) {
    size_t eol = buf_.find("\r\n", pos_);
    if (eol != std::string::npos) {
      line->assign(buf_, pos_, eol - pos_);
      pos_ = eol + 2;
      return true;
    }
    if (buffered() > max) return false;
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    if (!Fill()) return false;
  }
}

absl::StatusOr<std::string> Socket::ReadHeadBytes() {
  size_t scan_from = pos_;
  while (true) {
    size_t end = buf_.find("\r\n\r\n", scan_from);
    if (end != std::string::npos) {
      std::string head = buf_.substr(pos_, end + 2 - pos_);
      pos_ = end + 4;
      return head;
    }
    if (buffered() > kMaxHead) return absl::InvalidArgumentError("header block over 64 KiB");
    scan_from = buf_.size() >= 3 ? buf_.size() - 3 : 0;
    if (pos_ > 0) {
      scan_from -= std::min(scan_from, pos_);
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    bool had_bytes = buffered() > 0;
    if (!Fill()) {
      if (timed_out_) return absl::DeadlineExceededError("timed out reading header");
      if (!had_bytes) return absl::NotFoundError("connection closed");
      return absl::InvalidArgumentError("connection closed inside header");
    }
  }
}

absl::StatusOr<MessageHead> Socket::ReadRequestHead() {
  auto bytes = ReadHeadBytes();
  if (!bytes.ok()) return bytes.status();
  absl::string_view text = *bytes;
  // Tolerate stray CRLFs between pipelined requests (RFC 9112 2.2).
  while (absl::ConsumePrefix(&text, "\r\n")) {
  }
  size_t eol = text.find("\r\n");
  absl::string_view first = text.substr(0, eol);
  std::vector<absl::string_view> parts = absl::StrSplit(first, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return absl::InvalidArgumentError(absl::StrCat("malformed request line \"", first, "\""));
  }
  MessageHead head;
  head.method = std::string(parts[0]);
  head.target = std::string(parts[1]);
  head.http11 = parts[2] != "HTTP/1.0";
  absl::string_view target = head.target;
  if (absl::StartsWith(target, "http://")) {  // absolute-form
    target.remove_prefix(7);
    size_t slash = target.find('/');
    target = slash == absl::string_view::npos ? "/" : target.substr(slash);
  }
  size_t q = target.find('?');
  head.path = std::string(target.substr(0, q));
  if (q != absl::string_view::npos) head.query = std::string(target.substr(q + 1));
  if (auto s = ParseHeaders(eol == absl::string_view::npos ? "" : text.substr(eol + 2), &head);
      !s.ok()) {
    return s;
  }
  return head;
}

absl::StatusOr<MessageHead> Socket::ReadResponseHead() {
  while (true) {
    auto bytes = ReadHeadBytes();
    if (!bytes.ok()) return bytes.status();
    absl::string_view text = *bytes;
    size_t eol = text.find("\r\n");
    absl::string_view first = text.substr(0, eol);
    if (!absl::StartsWith(first, "HTTP/1.") || first.size() < 12) {
      return absl::InvalidArgumentError(absl::StrCat("malformed status line \"", first, "\""));
    }
    MessageHead head;
    head.http11 = !absl::StartsWith(first, "HTTP/1.0");
    if (!absl::SimpleAtoi(first.substr(9, 3), &head.status) || head.status < 100) {
      return absl::InvalidArgumentError(absl::StrCat("malformed status line \"", first, "\""));
    }
    if (first.size() > 13) head.reason = std::string(first.substr(13));
    if (head.status >= 100 && head.status < 200) continue;  // interim response: skip
    if (auto s = ParseHeaders(eol == absl::string_view::npos ? "" : text.substr(eol + 2), &head);
        !s.ok()) {
      return s;
    }
    return head;
  }
}

bool Socket::WriteAll(absl::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  int flags = MSG_NOSIGNAL | (deadline_ == kNoDeadline ? 0 : MSG_DONTWAIT);
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, flags);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (deadline_ == kNoDeadline) {  // SO_SNDTIMEO expired
        timed_out_ = true;
        return false;
      }
      if (!WaitFor(POLLOUT)) return false;
      continue;
    }
    if (n <= 0) return false;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

bool Socket::WriteAll(absl::string_view a, absl::string_view b) {
  if (a.size() + b.size() <= 16 * 1024) return WriteAll(absl::StrCat(a, b));
  return WriteAll(a) && WriteAll(b);
}

BodyReader::BodyReader(Socket* socket, Framing framing, int64_t length)
    : socket_(socket), framing_(framing), length_(length) {
  if (framing_ == Framing::kLength) {
    remaining_ = length;
    done_ = length <= 0;
  }
}

BodyReader BodyReader::ForRequest(Socket* socket, const MessageHead& head) {
  if (head.chunked) return BodyReader(socket, Framing::kChunked, -1);
  return BodyReader(socket, Framing::kLength, head.content_length > 0 ? head.content_length : 0);
}

bool BodyReader::FullyBuffered() const {
  return done_ ||
         (framing_ == Framing::kLength && static_cast<int64_t>(socket_->buffered()) >= remaining_);
}

ssize_t BodyReader::Read(char* out, size_t n) {
  if (done_) return 0;
  if (failed_ || n == 0) return failed_ ? -1 : 0;
  switch (framing_) {
    case Framing::kUntilClose: {
      ssize_t r = socket_->ReadSome(out, n);
      if (r == 0) done_ = true;
      if (r < 0) failed_ = true;
      return r;
    }
    case Framing::kLength: {
      ssize_t r = socket_->ReadSome(out, static_cast<size_t>(std::min<int64_t>(n, remaining_)));
      if (r <= 0) {
        failed_ = true;
        return -1;
      }
      remaining_ -= r;
      if (remaining_ == 0) done_ = true;
      return r;
    }
    case Framing::kChunked: {
      if (remaining_ == 0) {
        std::string line;
        if (!socket_->ReadLine(&line, 1024)) {
          failed_ = true;
          return -1;
        }
        absl::string_view size_text = line;
        size_t semi = size_text.find(';');
        if (semi != absl::string_view::npos) size_text = size_text.substr(0, semi);
        size_text = absl::StripAsciiWhitespace(size_text);
        uint64_t size = 0;
        if (size_text.empty() || size_text.size() > 15 || !absl::SimpleHexAtoi(size_text, &size)) {
          failed_ = true;
          return -1;
        }
        if (size == 0) {
          // Trailers end at an empty line.
          while (true) {
            if (!socket_->ReadLine(&line, 8192)) {
              failed_ = true;
              return -1;
            }
            if (line.empty()) break;
          }
          done_ = true;
          return 0;
        }
        remaining_ = static_cast<int64_t>(size);
      }
      ssize_t r = socket_->ReadSome(out, static_cast<size_t>(std::min<int64_t>(n, remaining_)));
      if (r <= 0) {
        failed_ = true;
        return -1;
      }
      remaining_ -= r;
      if (remaining_ == 0) {
        std::string crlf;
        if (!socket_->ReadLine(&crlf, 2) || !crlf.empty()) {
          failed_ = true;
          return -1;
        }
      }
      return r;
    }
  }
  return -1;
}

ResponseWriter::ResponseWriter(Socket* socket, const MessageHead& request, Clock::time_point start)
    : socket_(socket),
      head_only_(request.method == "HEAD"),
      http11_(request.http11),
      start_(start),
      keep_alive_(request.keep_alive) {}

bool ResponseWriter::WriteHead(int status, const std::vector<Header>& headers,
                               int64_t content_length) {
  status_ = status;
  std::string head =
      absl::StrCat(http11_ ? "HTTP/1.1 " : "HTTP/1.0 ", status, " ", StatusText(status), "\r\n");
  for (const Header& h : headers) absl::StrAppend(&head, h.name, ": ", h.value, "\r\n");
  absl::StrAppend(&head, "X-Duration-Seconds: ", FormatDurationSeconds(Clock::now() - start_),
                  "\r\n");
  bool bodyless = status == 204 || status == 304;
  if (bodyless) {
    // no framing headers
  } else if (content_length >= 0) {
    absl::StrAppend(&head, "Content-Length: ", content_length, "\r\n");
  } else if (http11_) {
    chunked_ = !head_only_;
    absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n");
  } else {
    keep_alive_ = false;  // close-delimited body
  }
  if (!keep_alive_) {
    absl::StrAppend(&head, "Connection: close\r\n");
  } else if (!http11_) {
    absl::StrAppend(&head, "Connection: keep-alive\r\n");
  }
  absl::StrAppend(&head, "\r\n");
  head_written_ = true;
  if (!socket_->WriteAll(head)) failed_ = true;
  return !failed_;
}

bool ResponseWriter::WriteBody(absl::string_view data) {
  if (failed_) return false;
  if (head_only_ || data.empty()) return true;
  bool ok;
  if (chunked_) {
    char size[24];
    int len = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    ok = socket_->WriteAll(absl::string_view(size, static_cast<size_t>(len)), data) &&
         socket_->WriteAll("\r\n");
  } else {
    ok = socket_->WriteAll(data);
  }
  if (!ok) failed_ = true;
  return ok;
}

bool ResponseWriter::Finish() {
  if (failed_) return false;
  if (chunked_ && !socket_->WriteAll("0\r\n\r\n")) failed_ = true;
  return !failed_;
}

bool ResponseWriter::Send(int status, absl::string_view content_type, absl::string_view body,
                          std::vector<Header> extra) {
  if (!content_type.empty()) extra.push_back({"Content-Type", std::string(content_type)});
  status_ = status;
  std::string head =
      absl::StrCat(http11_ ? "HTTP/1.1 " : "HTTP/1.0 ", status, " ", StatusText(status), "\r\n");
  for (const Header& h : extra) absl::StrAppend(&head, h.name, ": ", h.value, "\r\n");
  absl::StrAppend(&head, "X-Duration-Seconds: ", FormatDurationSeconds(Clock::now() - start_),
                  "\r\nContent-Length: ", body.size(), "\r\n");
  if (!keep_alive_)
    absl::StrAppend(&head, "Connection: close\r\n");
  else if (!http11_)
    absl::StrAppend(&head, "Connection: keep-alive\r\n");
  absl::StrAppend(&head, "\r\n");
  head_written_ = true;
  if (!socket_->WriteAll(head, head_only_ ? absl::string_view() : body)) failed_ = true;
  return !failed_;
}

const char* StatusText(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

bool IsHopByHop(absl::string_view name) {
  static const char* const kHop[] = {"Connection",
                                     "Keep-Alive",
                                     "Proxy-Connection",
                                     "TE",
                                     "Trailer",
                                     "Transfer-Encoding",
                                     "Upgrade",
                                     "Proxy-Authenticate",
                                     "Proxy-Authorization"};
  for (const char* h : kHop) {
    if (absl::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

std::string FormatDurationSeconds(Clock::duration d) {
  // Same shape as upstream's fmt "%f".
  char out[32];
  double s = std::chrono::duration<double>(d).count();
  std::snprintf(out, sizeof(out), "%f", s);
  return out;
}

}  // namespace faasd::watchdog
