// HTTP/1.1 for fwatchdog: Boost.Beast's parser and serializer over blocking POSIX sockets.
// Private to src/watchdog.
//
// Why Beast without Asio sockets: fwatchdog serves one connection per thread with blocking
// calls (a classic request blocks on fork+exec anyway), and its timeouts are the kernel's
// (SO_RCVTIMEO/SO_SNDTIMEO for read_timeout/write_timeout) plus a poll deadline towards
// upstreams (exec_timeout). Asio's synchronous socket calls poll internally with no timeout
// and would lose SO_RCVTIMEO, and its reactor buys nothing for one blocking thread per
// connection. So Socket does the syscalls (recv into a flat_buffer, sendmsg of a whole buffer
// sequence: head and body leave in one write) and Beast does every byte of framing: request
// and status lines, header syntax and limits, Content-Length/Transfer-Encoding rules, chunked
// decoding and encoding.
//
// Bodies are never held whole: BodyReader hands out decoded bytes as they arrive.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace faasd::watchdog {

namespace http = boost::beast::http;

using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

// A request or response head bigger than this is refused (431 from the server side).
constexpr uint32_t kMaxHeadBytes = 64 * 1024;

struct Header {
  std::string name;
  std::string value;
};

// A request as the handlers see it (copied out of Beast's parsed header).
struct MessageHead {
  std::string method;
  std::string target;
  std::string path;
  std::string query;
  bool http11 = true;
  std::vector<Header> headers;  // in arrival order, names as sent

  const std::string* Find(absl::string_view name) const;  // case-insensitive
  bool chunked = false;
  int64_t content_length = -1;  // -1: not given
  bool keep_alive = true;       // per version and Connection header
  bool expect_continue = false;
};

// An fd plus its read buffer. Reads and writes honour an optional deadline (used for
// exec_timeout towards upstreams); without one, the socket's SO_RCVTIMEO/SO_SNDTIMEO apply
// (read_timeout/write_timeout towards clients). Models Beast's SyncWriteStream.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  void set_deadline(Clock::time_point d) { deadline_ = d; }
  bool timed_out() const { return timed_out_; }

  // Bytes received and not parsed yet.
  boost::beast::flat_buffer& buffer() { return buf_; }
  size_t buffered() const { return buf_.size(); }
  // One recv into buffer(): >0 bytes, 0 on EOF, -1 on error or timeout (see timed_out()).
  ssize_t Fill();

  // SyncWriteStream: one sendmsg of (a prefix of) the buffer sequence.
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec);
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers);

 private:
  size_t SendIov(struct iovec* iov, size_t count, boost::system::error_code& ec);
  bool WaitFor(short events);

  int fd_;
  boost::beast::flat_buffer buf_;
  Clock::time_point deadline_ = kNoDeadline;
  bool timed_out_ = false;
};

// Decoded body bytes of one message.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // >0 bytes, 0 at the end of the body, -1 on error (truncated, malformed, timeout).
  virtual ssize_t Read(char* out, size_t n) = 0;
  virtual bool done() const = 0;
  virtual bool failed() const = 0;
  virtual bool chunked() const = 0;
  // Content-Length of the body, or -1 when it is chunked or runs until close.
  virtual int64_t length() const = 0;
  // True when the whole remaining body is already in the socket's buffer (fast path).
  virtual bool FullyBuffered() const = 0;
};

// One message read off a Socket with a Beast parser: head, then body. Single use; the
// Socket keeps any bytes past the message (a pipelined request) for the next reader.
template <bool isRequest>
class MessageReader final : public BodyReader {
 public:
  explicit MessageReader(Socket* socket);

  // Errors: NotFound on a clean EOF before the first byte, DeadlineExceeded on timeout,
  // ResourceExhausted for a head over kMaxHeadBytes, InvalidArgument for anything malformed
  // (bad syntax, Content-Length with Transfer-Encoding, conflicting Content-Lengths, a
  // request whose Transfer-Encoding does not end in chunked, ...). The message names Beast's
  // error.
  absl::Status ReadHead();
  // For the response to a HEAD request: the head announces a body that never comes.
  void SkipBody() { parser_.skip(true); }
  const http::header<isRequest>& head() const { return parser_.get().base(); }
  bool keep_alive() const { return parser_.keep_alive(); }

  ssize_t Read(char* out, size_t n) override;
  bool done() const override { return parser_.is_done(); }
  bool failed() const override { return failed_; }
  bool chunked() const override { return parser_.chunked(); }
  int64_t length() const override;
  bool FullyBuffered() const override;

 private:
  Socket* socket_;
  http::parser<isRequest, http::buffer_body> parser_;
  bool failed_ = false;
};
using RequestReader = MessageReader<true>;
using ResponseReader = MessageReader<false>;

// The handlers' view of a request whose head has been read.
MessageHead ToMessageHead(const RequestReader& reader);

// Writes one response to a client: head (status, headers, X-Duration-Seconds, framing), then
// body. Unknown length means chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
class ResponseWriter {
 public:
  ResponseWriter(Socket* socket, const MessageHead& request, Clock::time_point start);

  // Sends the head at once (a streamed body may take a while to start).
  bool WriteHead(int status, const std::vector<Header>& headers, int64_t content_length,
                 absl::string_view reason = {});
  bool WriteBody(absl::string_view data);
  bool Finish();  // final chunk; false if the connection must close
  // Head and a whole body in one write.
  bool Send(int status, const std::vector<Header>& headers, absl::string_view body,
            absl::string_view reason = {});
  bool Send(int status, absl::string_view content_type, absl::string_view body,
            std::vector<Header> extra = {});
  // "100 Continue" for a client that waits for it before sending its body.
  bool Continue();

  // Runs `f` once, just before the write that completes the response (or from
  // RunBeforeLastWrite when the handler ends without one), so that what the response
  // frees — a max_inflight slot — is free by the time the client can read the answer.
  void BeforeLastWrite(std::function<void()> f) { before_last_write_ = std::move(f); }
  void RunBeforeLastWrite() {
    if (auto f = std::move(before_last_write_)) {
      before_last_write_ = nullptr;
      f();
    }
  }

  bool head_written() const { return head_written_; }
  bool failed() const { return failed_; }
  // The connection may serve another request (client asked for it and framing allows it).
  bool keep_alive() const { return keep_alive_ && !failed_; }
  void force_close() { keep_alive_ = false; }
  int status() const { return status_; }

 private:
  // Fills response_'s head; content_length -1: chunked or close-delimited.
  void PrepareHead(int status, const std::vector<Header>& headers, int64_t content_length,
                   absl::string_view reason);

  Socket* socket_;
  bool head_only_;
  bool http11_;
  Clock::time_point start_;
  bool keep_alive_;
  bool head_written_ = false;
  bool failed_ = false;
  int status_ = 0;
  int64_t body_left_ = -1;  // bytes of a Content-Length body not yet written; -1: other framing
  std::function<void()> before_last_write_;
  http::response<http::buffer_body> response_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
};

bool IsHopByHop(absl::string_view header_name);
std::string FormatDurationSeconds(Clock::duration d);
absl::string_view ToAbsl(boost::beast::string_view s);

// Socket's SyncWriteStream face: a buffer sequence becomes one iovec array.
constexpr size_t kMaxIov = 64;

template <class ConstBufferSequence>
size_t Socket::write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
  struct iovec iov[kMaxIov];
  size_t count = 0;
  for (auto it = boost::asio::buffer_sequence_begin(buffers),
            end = boost::asio::buffer_sequence_end(buffers);
       it != end && count < kMaxIov; ++it) {
    boost::asio::const_buffer b(*it);
    if (b.size() == 0) continue;
    iov[count++] = {const_cast<void*>(b.data()), b.size()};
  }
  return SendIov(iov, count, ec);
}

template <class ConstBufferSequence>
size_t Socket::write_some(const ConstBufferSequence& buffers) {
  boost::system::error_code ec;
  size_t n = write_some(buffers, ec);
  if (ec) throw boost::system::system_error(ec);
  return n;
}

}  // namespace faasd::watchdog
