// One write of a few buffers to a socket the way nginx does it: at once, and only what the
// kernel does not take goes through Asio.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <utility>

#include "boost/asio/buffer.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/buffers_suffix.hpp"
#include "boost/system/error_code.hpp"

namespace faasd::gateway {

// Sends `bufs` on `stream`'s socket at once and, when the kernel takes them all (the usual
// case: a head and a small body into an empty send buffer), calls `then(ec, bytes)` before
// returning, as nginx writes; the rest, if any, goes out with async_write, whose completion
// calls `then`. An async_write that completes at once still has its completion queued, and
// each costs a round of Asio's scheduler with a reactor poll (an epoll_wait): two per request.
// The caller returns right after: `then` may already have run.
template <typename Stream, typename Buffers, typename Then>
void WriteNowOrLater(Stream& stream, const Buffers& bufs, Then then) {
  std::array<iovec, 8> iov;
  size_t count = 0, total = 0;
  bool fits = true;
  for (const boost::asio::const_buffer& b : bufs) {
    if (b.size() == 0) continue;
    if (count == iov.size()) {
      fits = false;
      break;
    }
    iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    total += b.size();
  }
  size_t sent = 0;
  if (fits && total > 0) {
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t n = ::sendmsg(stream.socket().native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0 && static_cast<size_t>(n) == total) return then(boost::system::error_code(), total);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return then(boost::system::error_code(errno, boost::system::system_category()), 0);
    }
    if (n > 0) sent = static_cast<size_t>(n);
  }
  boost::beast::buffers_suffix<Buffers> rest(bufs);
  rest.consume(sent);
  boost::asio::async_write(
      stream, rest, [then = std::move(then), sent](boost::system::error_code ec, size_t n) mutable {
        then(ec, sent + n);
      });
}

}  // namespace faasd::gateway
