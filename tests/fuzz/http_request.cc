// Client requests as the front end frames them (client_session.cc): Beast's request parser with
// the gateway's limits (LimitParser), fed in pieces; CheckRequestFraming on the head, the
// routing of the target (ParseFunctionTarget, UpstreamPath) and the /system basic auth check;
// then the body, chunked or not, read through a small buffer_body window as the proxy reads it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/buffer_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "gateway/basic_auth.h"
#include "gateway/http_rules.h"

namespace http = boost::beast::http;
namespace gateway = faasd::gateway;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks how many bytes each read delivers: framing must not depend on where
  // TCP splits the stream.
  const size_t piece = 1 + data[0] % 64;
  ++data;
  --size;
  http::request_parser<http::buffer_body> parser;
  gateway::LimitParser(parser);
  boost::beast::flat_buffer in;
  size_t fed = 0;
  auto feed = [&] {
    const size_t n = std::min(piece, size - fed);
    auto b = in.prepare(n);
    std::copy(data + fed, data + fed + n, static_cast<uint8_t*>(b.data()));
    in.commit(n);
    fed += n;
    return n > 0;
  };
  boost::system::error_code ec;
  while (!parser.is_header_done()) {
    if (!feed()) return 0;  // the connection would wait for more
    in.consume(parser.put(in.data(), ec));
    if (ec == http::error::need_more) ec = {};
    if (ec) return 0;  // 400 or 431
  }
  const auto& req = parser.get();
  if (!gateway::CheckRequestFraming(req, parser.chunked()).empty()) return 0;
  gateway::FunctionTarget t;
  const auto target = gateway::View(req.target());
  if (gateway::ParseFunctionTarget(target, "/function/", "openfaas-fn", &t)) {
    (void)gateway::UpstreamPath(t.suffix);
  }
  const auto auth = req.find(http::field::authorization);
  if (auth != req.end()) (void)gateway::BasicAuthorized(gateway::View(auth->value()), {"a", "b"});
  (void)gateway::IsReplaySafe(req.method(), req);

  char window[97];  // odd-sized, so chunk edges fall anywhere in it
  while (!parser.is_done()) {
    parser.get().body().data = window;
    parser.get().body().size = sizeof window;
    if (in.size() == 0 && !feed()) return 0;
    in.consume(parser.put(in.data(), ec));
    if (ec == http::error::need_buffer || ec == http::error::need_more) ec = {};
    if (ec) return 0;
    if (in.size() > 0 && parser.get().body().size == sizeof window && !parser.is_done() &&
        !feed()) {
      return 0;  // nothing consumed and nothing more to give: a truncated body
    }
  }
  return 0;
}
