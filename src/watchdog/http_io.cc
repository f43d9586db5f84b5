#include "watchdog/http_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace faasd::watchdog {
namespace {

using boost::system::error_code;

constexpr size_t kReadChunk = 64 * 1024;

// Beast's parser wants the whole head in one buffer; a read adds at least this much room.
constexpr size_t kMinRead = 16 * 1024;

absl::Status ParseError(const error_code& ec) {
  if (ec == http::error::header_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("header block over ", kMaxHeadBytes / 1024, " KiB"));
  }
  return absl::InvalidArgumentError(absl::StrCat("malformed head: ", ec.message()));
}

// RFC 9112 2.2: a server should ignore at least one empty line before a request line.
void SkipEmptyLines(boost::beast::flat_buffer& buf) {
  size_t skip = 0;
  auto data = static_cast<const char*>(buf.data().data());
  while (skip + 2 <= buf.size() && data[skip] == '\r' && data[skip + 1] == '\n') skip += 2;
  buf.consume(skip);
}

}  // namespace

absl::string_view ToAbsl(boost::beast::string_view s) { return {s.data(), s.size()}; }

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

ssize_t Socket::Fill() {
  if (!WaitFor(POLLIN)) return -1;
  size_t room = buf_.capacity() - buf_.size();
  auto space = buf_.prepare(room >= kMinRead ? room : kReadChunk);
  ssize_t n;
  do {
    n = ::recv(fd_, space.data(), space.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) timed_out_ = true;  // SO_RCVTIMEO
    return -1;
  }
  buf_.commit(static_cast<size_t>(n));
  return n;
}

size_t Socket::SendIov(struct iovec* iov, size_t count, error_code& ec) {
  ec = {};
  if (count == 0) return 0;
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  int flags = MSG_NOSIGNAL | (deadline_ == kNoDeadline ? 0 : MSG_DONTWAIT);
  while (true) {
    ssize_t n = ::sendmsg(fd_, &msg, flags);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (deadline_ == kNoDeadline || !WaitFor(POLLOUT)) {  // SO_SNDTIMEO or deadline expired
        timed_out_ = true;
        ec = boost::asio::error::timed_out;
        return 0;
      }
      continue;
    }
    ec = error_code(errno, boost::system::system_category());
    return 0;
  }
}

template <bool isRequest>
MessageReader<isRequest>::MessageReader(Socket* socket) : socket_(socket) {
  parser_.header_limit(kMaxHeadBytes);
  // Bodies stream; buffered modes cap what they hold. Not boost::none: Boost 1.74 compares
  // Content-Length against the optional itself, and every length exceeds an empty optional.
  parser_.body_limit(std::numeric_limits<uint64_t>::max());
}

template <bool isRequest>
absl::Status MessageReader<isRequest>::ReadHead() {
  boost::beast::flat_buffer& buf = socket_->buffer();
  // Beast's header_limit applies per put() call (the start line is consumed apart from the
  // fields), so the head's total size is counted here.
  size_t head_bytes = 0;
  // Each pass parses what is buffered or receives more: a head over the limit, EOF or a
  // timeout ends it.
  while (true) {
    if (isRequest && !parser_.got_some()) SkipEmptyLines(buf);
    if (buf.size() > 0) {
      error_code ec;
      size_t used = parser_.put(buf.data(), ec);
      buf.consume(used);
      head_bytes += used;
      if (parser_.is_header_done()) {
        if (head_bytes > kMaxHeadBytes) return ParseError(http::error::header_limit);
        break;
      }
      if (ec && ec != http::error::need_more) return ParseError(ec);
      if (head_bytes + buf.size() > kMaxHeadBytes) return ParseError(http::error::header_limit);
    }
    ssize_t n = socket_->Fill();
    if (n > 0) continue;
    if (n < 0 && socket_->timed_out()) return absl::DeadlineExceededError("timed out reading head");
    if (n < 0) return absl::UnavailableError(absl::StrCat("read head: ", std::strerror(errno)));
    if (!parser_.got_some() && buf.size() == 0) return absl::NotFoundError("connection closed");
    return absl::InvalidArgumentError("connection closed inside the head");
  }
  // RFC 9112 6.1: a request whose Transfer-Encoding does not end in chunked has no knowable
  // length (Beast would read it as bodiless and parse the body as the next request).
  if (isRequest && !parser_.chunked() &&
      parser_.get().find(http::field::transfer_encoding) != parser_.get().end()) {
    return absl::InvalidArgumentError("malformed head: Transfer-Encoding without final chunked");
  }
  parser_.eager(true);  // body reads decode as much as the caller's buffer takes
  return absl::OkStatus();
}

template <bool isRequest>
ssize_t MessageReader<isRequest>::Read(char* out, size_t n) {
  if (failed_) return -1;
  if (parser_.is_done() || n == 0) return 0;
  http::buffer_body::value_type& body = parser_.get().body();
  body.data = out;
  body.size = n;
  boost::beast::flat_buffer& buf = socket_->buffer();
  // Each pass decodes buffered bytes or receives more; it ends with bytes for the caller,
  // the end of the body, or an error.
  while (body.size == n && !parser_.is_done() && !failed_) {
    if (buf.size() > 0) {
      error_code ec;
      size_t used = parser_.put(buf.data(), ec);
      buf.consume(used);
      if (ec == http::error::need_buffer) break;  // out is full
      if (ec && ec != http::error::need_more) {
        failed_ = true;
        break;
      }
      if (!ec && used > 0) continue;
    }
    ssize_t got = socket_->Fill();
    if (got < 0) {
      failed_ = true;
    } else if (got == 0) {
      error_code ec;
      parser_.put_eof(ec);  // ends a body that runs until close; else it was cut short
      if (ec || !parser_.is_done()) failed_ = true;
    }
  }
  size_t got = n - body.size;
  body.data = nullptr;
  body.size = 0;
  if (failed_ && got == 0) return -1;
  return static_cast<ssize_t>(got);
}

template <bool isRequest>
int64_t MessageReader<isRequest>::length() const {
  if (!parser_.is_header_done() || parser_.chunked()) return -1;
  auto length = parser_.content_length();
  return length ? static_cast<int64_t>(*length) : -1;
}

template <bool isRequest>
bool MessageReader<isRequest>::FullyBuffered() const {
  if (parser_.is_done()) return true;
  if (!parser_.is_header_done() || parser_.chunked()) return false;
  auto left = parser_.content_length_remaining();
  return left && *left <= socket_->buffered();
}

template class MessageReader<true>;
template class MessageReader<false>;

MessageHead ToMessageHead(const RequestReader& reader) {
  const http::request_header<>& req = reader.head();
  MessageHead head;
  head.method = std::string(ToAbsl(req.method_string()));
  head.target = std::string(ToAbsl(req.target()));
  head.http11 = req.version() >= 11;
  absl::string_view target = head.target;
  if (absl::StartsWith(target, "http://")) {  // absolute-form
    target.remove_prefix(7);
    size_t slash = target.find('/');
    target = slash == absl::string_view::npos ? "/" : target.substr(slash);
  }
  size_t q = target.find('?');
  head.path = std::string(target.substr(0, q));
  if (q != absl::string_view::npos) head.query = std::string(target.substr(q + 1));
  head.headers.reserve(static_cast<size_t>(std::distance(req.begin(), req.end())));
  for (const auto& field : req) {
    head.headers.push_back(
        {std::string(ToAbsl(field.name_string())), std::string(ToAbsl(field.value()))});
  }
  head.chunked = reader.chunked();
  head.content_length = reader.length();
  head.keep_alive = reader.keep_alive();
  auto expect = req.find(http::field::expect);
  head.expect_continue =
      expect != req.end() && absl::EqualsIgnoreCase(ToAbsl(expect->value()), "100-continue");
  return head;
}

ResponseWriter::ResponseWriter(Socket* socket, const MessageHead& request, Clock::time_point start)
    : socket_(socket),
      head_only_(request.method == "HEAD"),
      http11_(request.http11),
      start_(start),
      keep_alive_(request.keep_alive) {}

void ResponseWriter::PrepareHead(int status, const std::vector<Header>& headers,
                                 int64_t content_length, absl::string_view reason) {
  status_ = status;
  response_.result(static_cast<unsigned>(status));
  if (!reason.empty()) response_.reason({reason.data(), reason.size()});
  response_.version(http11_ ? 11 : 10);
  for (const Header& h : headers) response_.insert(h.name, h.value);
  response_.set("X-Duration-Seconds", FormatDurationSeconds(Clock::now() - start_));
  const bool bodyless = status == 204 || status == 304;
  if (bodyless) {
    // no framing headers
  } else if (content_length >= 0) {
    response_.content_length(static_cast<uint64_t>(content_length));
    body_left_ = head_only_ ? 0 : content_length;
  } else if (http11_) {
    response_.chunked(true);
  } else {
    keep_alive_ = false;  // close-delimited body
  }
  if (!keep_alive_) {
    response_.set(http::field::connection, "close");
  } else if (!http11_) {
    response_.set(http::field::connection, "keep-alive");
  }
  head_written_ = true;
  serializer_.emplace(response_);
}

bool ResponseWriter::WriteHead(int status, const std::vector<Header>& headers,
                               int64_t content_length, absl::string_view reason) {
  PrepareHead(status, headers, content_length, reason);
  if (body_left_ == 0 || status == 204 || status == 304) RunBeforeLastWrite();
  error_code ec;
  http::write_header(*socket_, *serializer_, ec);
  if (ec) failed_ = true;
  return !failed_;
}

bool ResponseWriter::WriteBody(absl::string_view data) {
  if (failed_) return false;
  if (head_only_ || data.empty()) return true;
  http::buffer_body::value_type& body = response_.body();
  body.data = const_cast<char*>(data.data());  // only read by the serializer
  body.size = data.size();
  body.more = true;
  if (body_left_ >= 0) {
    body_left_ -= std::min<int64_t>(body_left_, static_cast<int64_t>(data.size()));
    if (body_left_ == 0) RunBeforeLastWrite();
  }
  error_code ec;
  http::write(*socket_, *serializer_, ec);
  if (ec && ec != http::error::need_buffer) failed_ = true;
  return !failed_;
}

bool ResponseWriter::Finish() {
  if (failed_) return false;
  if (head_only_ || !serializer_ || serializer_->is_done()) return true;
  http::buffer_body::value_type& body = response_.body();
  body.data = nullptr;
  body.size = 0;
  body.more = false;
  RunBeforeLastWrite();
  error_code ec;
  http::write(*socket_, *serializer_, ec);  // the final chunk, when chunked
  if (ec) failed_ = true;
  return !failed_;
}

bool ResponseWriter::Send(int status, const std::vector<Header>& headers, absl::string_view body,
                          absl::string_view reason) {
  PrepareHead(status, headers, static_cast<int64_t>(body.size()), reason);
  RunBeforeLastWrite();
  error_code ec;
  if (head_only_) {
    http::write_header(*socket_, *serializer_, ec);
  } else {
    http::buffer_body::value_type& b = response_.body();
    b.data = const_cast<char*>(body.data());  // only read by the serializer
    b.size = body.size();
    b.more = false;
    http::write(*socket_, *serializer_, ec);
  }
  if (ec) failed_ = true;
  return !failed_;
}

bool ResponseWriter::Send(int status, absl::string_view content_type, absl::string_view body,
                          std::vector<Header> extra) {
  if (!content_type.empty()) extra.push_back({"Content-Type", std::string(content_type)});
  return Send(status, extra, body);
}

bool ResponseWriter::Continue() {
  http::response<http::empty_body> interim{http::status::continue_, 11};
  error_code ec;
  http::write(*socket_, interim, ec);
  return !ec;
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
