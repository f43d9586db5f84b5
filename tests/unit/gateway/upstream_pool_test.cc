// UpstreamPool on real loopback sockets: what Sweep closes and what it keeps, and what Take
// hands out.
#include "gateway/upstream_pool.h"

#include <poll.h>

#include <chrono>
#include <memory>

#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/write.hpp"
#include "catch.hpp"

namespace faasd::gateway {
namespace {

using boost::asio::ip::tcp;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// A connection to `listener` (the kernel completes it from the backlog; nobody accepts).
std::shared_ptr<UpstreamConnection> Connect(boost::asio::io_context& ioc,
                                            const tcp::acceptor& listener) {
  auto conn = std::make_shared<UpstreamConnection>(ioc, "replica");
  conn->stream.connect(listener.local_endpoint());
  return conn;
}

TEST_CASE("a sweep closes the connections pooled before its cutoff and keeps the rest",
          "[upstream_pool]") {
  boost::asio::io_context ioc;
  tcp::acceptor listener(ioc, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  UpstreamPool pool;
  auto old1 = Connect(ioc, listener), old2 = Connect(ioc, listener),
       fresh = Connect(ioc, listener);
  pool.Put(old1);
  pool.Put(old2);
  old1->idle_since -= seconds(60);
  old2->idle_since -= seconds(45);
  pool.Put(fresh);
  REQUIRE(pool.idle("replica") == 3);

  CHECK(pool.Sweep(Clock::now() - seconds(30)) == 2);
  CHECK(pool.idle("replica") == 1);
  CHECK_FALSE(old1->stream.socket().is_open());
  CHECK_FALSE(old2->stream.socket().is_open());
  CHECK(fresh->stream.socket().is_open());
  CHECK(pool.idle("replica") == 1);
  CHECK(pool.Take("replica") == fresh);

  // Pooled again, it is fresh again; a sweep whose cutoff is past everything empties the pool.
  pool.Put(fresh);
  CHECK(pool.Sweep(Clock::now() - seconds(30)) == 0);
  CHECK(pool.Sweep(Clock::now() + seconds(1)) == 1);
  CHECK(pool.idle("replica") == 0);
  CHECK(pool.Take("replica") == nullptr);
}

TEST_CASE(
    "take skips a connection its replica closed while it was pooled, and one that has "
    "bytes nobody asked for",
    "[upstream_pool]") {
  boost::asio::io_context ioc;
  tcp::acceptor listener(ioc, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  UpstreamPool pool;
  auto healthy = Connect(ioc, listener);
  tcp::socket healthy_peer = listener.accept();
  auto closed = Connect(ioc, listener);
  tcp::socket closed_peer = listener.accept();
  auto chatty = Connect(ioc, listener);
  tcp::socket chatty_peer = listener.accept();
  // Take pops the most recently pooled first: the two bad ones are met before the healthy one.
  pool.Put(healthy);
  pool.Put(closed);
  pool.Put(chatty);
  closed_peer.close();  // the replica's FIN, while nothing of ours waits on the socket
  boost::asio::write(chatty_peer, boost::asio::buffer("x", 1));
  // Both have reached our side once each socket polls readable (poll consumes nothing).
  for (const auto& c : {closed, chatty}) {
    pollfd p{c->stream.socket().native_handle(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
  }

  std::shared_ptr<UpstreamConnection> taken = pool.Take("replica");
  CHECK(taken == healthy);
  CHECK(taken->reused);
  CHECK_FALSE(closed->stream.socket().is_open());
  CHECK_FALSE(chatty->stream.socket().is_open());
  CHECK(pool.idle("replica") == 0);
}

}  // namespace
}  // namespace faasd::gateway
