// A minimal HTTP/1.1 client for the invoke proxy: one request at a time on a TCP connection
// that stays open between requests. httplib's Client cannot hand us the response head before
// the body, which streaming needs, and costs more per request than this path can afford.
//
// Errors: Unavailable when the function cannot be reached or breaks the protocol (→ 502),
// DeadlineExceeded when it does not answer in time (→ 504). Messages name the address.
// Not thread-safe: a connection is used by one thread; UpstreamPool is per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace faasd::gateway {

struct UpstreamResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  bool chunked = false;     // body is chunk-encoded (decoded by ReadBody)
  bool has_length = false;  // Content-Length was given
  uint64_t content_length = 0;
  bool keep_alive = true;  // the server did not ask to close
};

class UpstreamConnection {
 public:
  static absl::StatusOr<std::unique_ptr<UpstreamConnection>> Connect(const std::string& ip,
                                                                     int port, absl::Time deadline);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  const std::string& address() const { return address_; }
  // True when an idle pooled connection was closed by the peer (or has stray bytes).
  bool Stale() const;

  absl::Status Write(absl::string_view data, absl::Time deadline);
  // Reads the status line and headers, skipping 1xx interim responses.
  absl::StatusOr<UpstreamResponseHead> ReadHead(bool head_request, absl::Time deadline);
  // Appends the next piece of body (decoded) to *out. Returns false once the body is complete
  // (and nothing was appended).
  absl::StatusOr<bool> ReadBody(std::string* out, absl::Time deadline);
  // Reads the whole remaining body.
  absl::Status ReadAllBody(std::string* out, size_t limit, absl::Time deadline);
  // True when the body was read to its end and the connection may carry another request.
  bool Reusable() const { return reusable_ && body_done_; }
  // Call before writing a new request on this connection.
  void StartRequest() { got_bytes_ = false; }
  // True once any response byte arrived for the current request: retrying is no longer safe.
  bool GotResponseBytes() const { return got_bytes_; }

 private:
  UpstreamConnection(int fd, std::string address) : fd_(fd), address_(std::move(address)) {}
  enum class Framing { kNone, kLength, kChunked, kUntilClose };
  // Reads more bytes into buf_. Returns false on orderly EOF.
  absl::StatusOr<bool> Fill(absl::Time deadline);
  absl::StatusOr<std::string> ReadLine(absl::Time deadline);
  absl::Status WaitFor(short events, absl::Time deadline);

  int fd_;
  std::string address_;
  std::string buf_;
  size_t pos_ = 0;
  Framing framing_ = Framing::kNone;
  uint64_t remaining_ = 0;   // bytes left in the body (kLength) or current chunk (kChunked)
  bool chunk_data_ = false;  // inside a chunk's data
  bool body_done_ = true;
  bool reusable_ = true;
  bool got_bytes_ = false;
};

// Idle keep-alive connections per "ip:port", shared by all worker threads (a per-thread pool
// would keep one idle connection per worker per function open, starving functions that
// serve a few connections at a time). Thread-safe; the lock is held only to push or pop.
class UpstreamPool {
 public:
  std::unique_ptr<UpstreamConnection> Take(const std::string& address);
  // Keeps the connection when it is reusable and the address has room; closes it otherwise.
  void Put(std::unique_ptr<UpstreamConnection> conn);

 private:
  static constexpr size_t kMaxIdlePerAddress = 256;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace faasd::gateway
