// A byte tunnel between a client and a function replica after the replica answered
// 101 Switching Protocols (WebSocket): what either side sends is copied to the other as it
// arrives, on the sockets' own event loop (one asynchronous read and write per direction, no
// thread), in pieces of at most kTunnelChunk bytes, so a message of any size streams through.
//
// Half-close is propagated: when one side ends its sending (FIN), the tunnel shuts down sending
// toward the other and keeps copying the other way until that side ends too; then both sockets
// are closed. A reset or a failed write on either side closes both at once. A tunnel with no
// byte moving in either direction for `idle_timeout` is closed (a peer that vanished without a
// FIN or RST must not hold two sockets for ever).
//
// Private to the gateway; not thread-safe: used only from the loop that runs its sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "boost/asio/ip/tcp.hpp"
#include "gateway/loop_types.h"

namespace faasd::gateway {

inline constexpr size_t kTunnelChunk = 16 << 10;

class Tunnel : public std::enable_shared_from_this<Tunnel> {
 public:
  // How a tunnel ended, for the log and the tests.
  struct Result {
    uint64_t to_upstream = 0, to_client = 0;  // bytes copied, first bytes included
    bool idle = false;                        // closed by the idle timeout
    bool failed = false;                      // a reset or failed write cut it
  };
  using Done = std::function<void(const Result&)>;

  // Starts copying. `to_client_first` goes to the client before anything read from the
  // upstream (the 101 head and whatever the replica sent right after it); `to_upstream_first`
  // goes to the replica before anything read from the client (bytes the client sent behind its
  // request head). `done` runs once, on the loop, when both sockets are closed; it is not run
  // when the loop is destroyed first (the daemon stopping).
  static void Start(LoopSocket client, LoopSocket upstream, std::string to_client_first,
                    std::string to_upstream_first, std::chrono::steady_clock::duration idle_timeout,
                    Done done);

  Tunnel(LoopSocket client, LoopSocket upstream, std::chrono::steady_clock::duration idle_timeout,
         Done done);

 private:
  // One direction: reads from `from`, writes to `to`.
  struct Direction {
    LoopSocket* from;
    LoopSocket* to;
    std::vector<char> buffer;
    std::string first;  // written before the first read
    uint64_t* copied;
    bool ended = false;  // `from` sent its FIN and `to` was shut down for sending
  };

  void Write(Direction& d, const char* data, size_t size);
  void Read(Direction& d);
  void EndDirection(Direction& d);
  void WatchIdle();
  void Finish(bool failed);

  LoopSocket client_, upstream_;
  LoopTimer idle_timer_;
  const std::chrono::steady_clock::duration idle_timeout_;
  std::chrono::steady_clock::time_point last_activity_;
  Result result_;
  Direction to_upstream_, to_client_;
  Done done_;
  bool finished_ = false;
};

}  // namespace faasd::gateway
