// WriteNowOrLater against real loopback sockets: whole writes complete before it returns, what
// the kernel does not take goes out through Asio in order, and errors reach the callback.
#include "gateway/write_now.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>

#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "catch.hpp"

namespace faasd::gateway::testing {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// A connected pair on loopback: `writer` (a Beast stream, as the gateway's) and `reader`.
struct Pair {
  asio::io_context ioc{1};
  boost::beast::tcp_stream writer{ioc};
  tcp::socket reader{ioc};

  explicit Pair(int writer_sndbuf = 0) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    if (writer_sndbuf > 0) {
      writer.socket().open(tcp::v4());
      writer.socket().set_option(asio::socket_base::send_buffer_size(writer_sndbuf));
    }
    writer.socket().connect(acceptor.local_endpoint());
    acceptor.accept(reader);
  }
};

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7919 + seed) % 26);
  return s;
}

TEST_CASE("a write the kernel takes whole is done before WriteNowOrLater returns", "[write]") {
  Pair p;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", body = "hello";
  const std::array<asio::const_buffer, 3> bufs = {asio::buffer(head), asio::const_buffer(),
                                                  asio::buffer(body)};
  bool done = false;
  size_t bytes = 0;
  WriteNowOrLater(p.writer, bufs, [&](error_code ec, size_t n) {
    CHECK(!ec);
    done = true;
    bytes = n;
  });
  CHECK(done);  // no trip through the io_context
  CHECK(bytes == head.size() + body.size());
  std::string got(bytes, '\0');
  asio::read(p.reader, asio::buffer(got));
  CHECK(got == head + body);
}

TEST_CASE("what a small send buffer does not take goes out later, whole and in order", "[write]") {
  Pair p(/*writer_sndbuf=*/4096);
  const std::array<std::string, 5> parts = {Pattern(100, 1), Pattern(200 << 10, 2), "",
                                            Pattern(3, 3), Pattern(100 << 10, 4)};
  std::array<asio::const_buffer, 5> bufs;
  std::string want;
  for (size_t i = 0; i < parts.size(); ++i) {
    bufs[i] = asio::buffer(parts[i]);
    want += parts[i];
  }
  std::string got;
  std::thread reader([&] {  // slow: small reads
    std::array<char, 1024> buf;
    error_code ec;
    while (got.size() < want.size()) {
      const size_t n = p.reader.read_some(asio::buffer(buf), ec);
      if (ec) return;
      got.append(buf.data(), n);
    }
  });
  bool done = false, inline_done = false;
  size_t bytes = 0;
  WriteNowOrLater(p.writer, bufs, [&](error_code ec, size_t n) {
    CHECK(!ec);
    done = true;
    bytes = n;
  });
  inline_done = done;
  for (int i = 0; i < 200 && !done; ++i) p.ioc.run_for(std::chrono::milliseconds(50));
  reader.join();
  CHECK_FALSE(inline_done);  // 300 KiB do not fit an 8 KiB send buffer at once
  CHECK(done);
  CHECK(bytes == want.size());
  CHECK(got.size() == want.size());
  CHECK(got == want);
}

TEST_CASE("a write to a connection the peer reset reports the error", "[write]") {
  Pair p;
  ::linger abort_close{1, 0};
  ::setsockopt(p.reader.native_handle(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
  p.reader.close();  // RST
  const std::string data = Pattern(1000, 5);
  error_code got;
  bool done = false;
  // The first write after an RST may still be taken (the RST is in flight); the second fails.
  for (int attempt = 0; attempt < 50 && !got; ++attempt) {
    done = false;
    WriteNowOrLater(p.writer, std::array<asio::const_buffer, 1>{asio::buffer(data)},
                    [&](error_code ec, size_t) {
                      done = true;
                      got = ec;
                    });
    for (int i = 0; i < 100 && !done; ++i) p.ioc.run_for(std::chrono::milliseconds(10));
    REQUIRE(done);
  }
  CHECK((got == asio::error::connection_reset || got == asio::error::broken_pipe));
}

}  // namespace
}  // namespace faasd::gateway::testing
