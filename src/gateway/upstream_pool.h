// Keep-alive connections from one event loop to function replicas (and to the gateway's
// internal /system server), pooled per "ip:port".
//
// A pooled connection arms no wait while idle (with Asio 1.74 every readiness wait re-arms epoll
// with a system call): Take() looks for an EOF before handing one out, so one a replica closed
// while idle is dropped there instead of failing the next request. Sweep() closes those idle
// for too long: after a burst, hundreds of connections would otherwise stay open for good,
// each holding a descriptor and, in a thread-per-connection function server, a thread there.
// Not thread-safe: one pool per event loop, used only from that loop's thread; connections
// never cross loops.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "boost/asio/io_context.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "gateway/loop_types.h"
#include "gateway/session_slab.h"

namespace faasd::gateway {

struct UpstreamConnection {
  // A response head of up to this size is read into the connection itself; a pooled connection
  // keeps no more buffer than this.
  static constexpr size_t kInlineBufferBytes = 1024;
  using Buffer = boost::beast::basic_flat_buffer<InlineBlockAllocator<char, kInlineBufferBytes>>;

  UpstreamConnection(boost::asio::io_context& ioc, std::string address)
      : stream(ioc), address(std::move(address)) {}
  LoopStream stream;
  InlineBlock<kInlineBufferBytes> buffer_block;
  // What was read of the response, and bytes past it.
  Buffer buffer{InlineBlockAllocator<char, kInlineBufferBytes>(buffer_block)};
  const std::string address;  // "ip:port", the pool's key
  bool reused = false;        // taken from the pool rather than freshly connected
  std::chrono::steady_clock::time_point idle_since;  // when Put last pooled it
};

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t max_idle_per_address = 256) : max_idle_(max_idle_per_address) {}
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // The most recently used idle connection to `address`, or null.
  std::shared_ptr<UpstreamConnection> Take(const std::string& address);
  // Keeps a connection whose last response was read to its end and that may carry another.
  void Put(std::shared_ptr<UpstreamConnection> conn);
  size_t idle(const std::string& address) const;
  // Closes every connection pooled before `cutoff` (those idle longer than the caller's
  // timeout); returns how many it closed.
  size_t Sweep(std::chrono::steady_clock::time_point cutoff);

 private:
  const size_t max_idle_;
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<UpstreamConnection>>> idle_;
};

}  // namespace faasd::gateway
