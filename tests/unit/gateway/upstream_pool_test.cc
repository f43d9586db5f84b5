// UpstreamPool on real loopback sockets: what Sweep closes and what it keeps.
#include "gateway/upstream_pool.h"

#include <chrono>
#include <memory>

#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
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
  ioc.poll();  // the closed ones' idle watches end (aborted) without touching the pool
  CHECK(pool.idle("replica") == 1);
  CHECK(pool.Take("replica") == fresh);

  // Pooled again, it is fresh again; a sweep whose cutoff is past everything empties the pool.
  pool.Put(fresh);
  CHECK(pool.Sweep(Clock::now() - seconds(30)) == 0);
  CHECK(pool.Sweep(Clock::now() + seconds(1)) == 1);
  CHECK(pool.idle("replica") == 0);
  CHECK(pool.Take("replica") == nullptr);
  ioc.poll();
}

}  // namespace
}  // namespace faasd::gateway
