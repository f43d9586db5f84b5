// Minimal HTTP/1.1 over blocking POSIX sockets for fwatchdog (no cpp-httplib: the binary is
// fully static). Private to src/watchdog.
//
// Socket owns an fd plus a read buffer. Reads and writes honour an optional deadline (used
// for exec_timeout towards upstreams); without one, the socket's SO_RCVTIMEO/SO_SNDTIMEO
// apply (read_timeout/write_timeout towards clients). Bodies are never buffered whole:
// BodyReader hands out decoded bytes as they arrive.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace faasd::watchdog {

using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

struct Header {
  std::string name;
  std::string value;
};

// A request line or status line plus headers.
struct MessageHead {
  // Request: method, target, path, query. Response: status.
  std::string method;
  std::string target;
  std::string path;
  std::string query;
  int status = 0;
  std::string reason;
  bool http11 = true;
  std::vector<Header> headers;

  const std::string* Find(absl::string_view name) const;  // case-insensitive
  bool chunked = false;
  int64_t content_length = -1;  // -1: not given
  bool keep_alive = true;       // per version and Connection header
  bool expect_continue = false;
};

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  void set_deadline(Clock::time_point d) { deadline_ = d; }
  bool timed_out() const { return timed_out_; }

  // Reads a head terminated by CRLFCRLF (at most 64 KiB). Status codes: NotFound on clean EOF
  // before the first byte, DeadlineExceeded on timeout, InvalidArgument on a malformed head.
  absl::StatusOr<MessageHead> ReadRequestHead();
  absl::StatusOr<MessageHead> ReadResponseHead();

  // Up to n bytes from the buffer or the socket: >0 bytes, 0 on EOF, -1 on error/timeout.
  ssize_t ReadSome(char* out, size_t n);
  // Reads a CRLF-terminated line (without CRLF); false on EOF/error or a line over max bytes.
  bool ReadLine(std::string* line, size_t max);
  size_t buffered() const { return buf_.size() - pos_; }

  bool WriteAll(absl::string_view data);
  bool WriteAll(absl::string_view a, absl::string_view b);

 private:
  absl::StatusOr<std::string> ReadHeadBytes();
  bool Fill();
  bool WaitFor(short events);

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  Clock::time_point deadline_ = kNoDeadline;
  bool timed_out_ = false;
};

// Decodes a message body: Content-Length, chunked, or until EOF.
class BodyReader {
 public:
  enum class Framing { kLength, kChunked, kUntilClose };
  BodyReader(Socket* socket, Framing framing, int64_t length);
  // For a request head: chunked, Content-Length, or empty.
  static BodyReader ForRequest(Socket* socket, const MessageHead& head);

  // >0 bytes, 0 at the end of the body, -1 on error (truncated, malformed, timeout).
  ssize_t Read(char* out, size_t n);
  bool done() const { return done_; }
  bool failed() const { return failed_; }
  Framing framing() const { return framing_; }
  int64_t length() const { return length_; }
  // True when the whole remaining body is already in the socket's buffer (fast path).
  bool FullyBuffered() const;

 private:
  Socket* socket_;
  Framing framing_;
  int64_t length_;
  int64_t remaining_ = 0;  // in the current chunk or in the Content-Length body
  bool done_ = false;
  bool failed_ = false;
};

// Writes one response to a client: head (status, headers, X-Duration-Seconds, framing), then
// body. Unknown length means chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
class ResponseWriter {
 public:
  ResponseWriter(Socket* socket, const MessageHead& request, Clock::time_point start);

  bool WriteHead(int status, const std::vector<Header>& headers, int64_t content_length);
  bool WriteBody(absl::string_view data);
  bool Finish();  // final chunk; false if the connection must close
  // status + one body in one write.
  bool Send(int status, absl::string_view content_type, absl::string_view body,
            std::vector<Header> extra = {});

  bool head_written() const { return head_written_; }
  bool failed() const { return failed_; }
  // The connection may serve another request (client asked for it and framing allows it).
  bool keep_alive() const { return keep_alive_ && !failed_; }
  void force_close() { keep_alive_ = false; }
  int status() const { return status_; }

 private:
  Socket* socket_;
  bool head_only_;
  bool http11_;
  Clock::time_point start_;
  bool keep_alive_;
  bool chunked_ = false;
  bool head_written_ = false;
  bool failed_ = false;
  int status_ = 0;
};

const char* StatusText(int status);
bool IsHopByHop(absl::string_view header_name);
std::string FormatDurationSeconds(Clock::duration d);

}  // namespace faasd::watchdog
