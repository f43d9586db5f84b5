// The socket, stream and timer types of the front end's event loops, bound to the loops' own
// executor (io_context::executor_type) rather than Asio's type-erased default
// (any_io_executor). Every operation copies, compares, moves and destroys its executor; with the
// erased type each of those is a call through a table, about 6% of the daemon's user time on
// the invoke path in perf (2026-11-30).
#pragma once

#include <chrono>

#include "boost/asio/basic_socket_acceptor.hpp"
#include "boost/asio/basic_stream_socket.hpp"
#include "boost/asio/basic_waitable_timer.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/basic_stream.hpp"
#include "boost/beast/core/rate_policy.hpp"

namespace faasd::gateway {

using LoopExecutor = boost::asio::io_context::executor_type;
using LoopSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, LoopExecutor>;
using LoopAcceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, LoopExecutor>;
using LoopTimer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, LoopExecutor>;
// Beast's stream with per-operation timeouts, as beast::tcp_stream but on the loop's executor.
using LoopStream = boost::beast::basic_stream<boost::asio::ip::tcp, LoopExecutor,
                                              boost::beast::unlimited_rate_policy>;

}  // namespace faasd::gateway
