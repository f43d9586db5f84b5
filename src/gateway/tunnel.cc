#include "gateway/tunnel.h"

#include "boost/asio/write.hpp"

namespace faasd::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

void Tunnel::Start(LoopSocket client, LoopSocket upstream, std::string to_client_first,
                   std::string to_upstream_first, std::chrono::steady_clock::duration idle_timeout,
                   Done done) {
  auto t = std::make_shared<Tunnel>(std::move(client), std::move(upstream), idle_timeout,
                                    std::move(done));
  t->to_client_.first = std::move(to_client_first);
  t->to_upstream_.first = std::move(to_upstream_first);
  for (Direction* d : {&t->to_client_, &t->to_upstream_}) {
    if (d->first.empty()) {
      t->Read(*d);
    } else {
      t->Write(*d, d->first.data(), d->first.size());
    }
  }
  t->WatchIdle();
}

Tunnel::Tunnel(LoopSocket client, LoopSocket upstream,
               std::chrono::steady_clock::duration idle_timeout, Done done)
    : client_(std::move(client)),
      upstream_(std::move(upstream)),
      idle_timer_(client_.get_executor()),
      idle_timeout_(idle_timeout),
      last_activity_(std::chrono::steady_clock::now()),
      to_upstream_{&client_, &upstream_, std::vector<char>(kTunnelChunk), "", &result_.to_upstream},
      to_client_{&upstream_, &client_, std::vector<char>(kTunnelChunk), "", &result_.to_client},
      done_(std::move(done)) {}

void Tunnel::Write(Direction& d, const char* data, size_t size) {
  asio::async_write(*d.to, asio::buffer(data, size),
                    [self = shared_from_this(), &d](error_code ec, size_t n) {
                      if (self->finished_) return;
                      if (ec) return self->Finish(/*failed=*/true);
                      *d.copied += n;
                      self->last_activity_ = std::chrono::steady_clock::now();
                      if (!d.first.empty()) std::string().swap(d.first);
                      self->Read(d);
                    });
}

void Tunnel::Read(Direction& d) {
  d.from->async_read_some(asio::buffer(d.buffer),
                          [self = shared_from_this(), &d](error_code ec, size_t n) {
                            if (self->finished_) return;
                            if (ec == asio::error::eof) return self->EndDirection(d);
                            if (ec) return self->Finish(/*failed=*/true);
                            self->last_activity_ = std::chrono::steady_clock::now();
                            self->Write(d, d.buffer.data(), n);
                          });
}

void Tunnel::EndDirection(Direction& d) {
  d.ended = true;
  error_code ignored;
  d.to->shutdown(tcp::socket::shutdown_send, ignored);  // its peer reads EOF, as we did
  if (to_upstream_.ended && to_client_.ended) Finish(/*failed=*/false);
}

void Tunnel::WatchIdle() {
  idle_timer_.expires_at(last_activity_ + idle_timeout_);
  idle_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->finished_) return;
    if (std::chrono::steady_clock::now() - self->last_activity_ >= self->idle_timeout_) {
      self->result_.idle = true;
      return self->Finish(/*failed=*/false);
    }
    self->WatchIdle();  // something moved meanwhile: wait from then
  });
}

void Tunnel::Finish(bool failed) {
  if (finished_) return;
  finished_ = true;
  result_.failed = failed;
  idle_timer_.cancel();
  error_code ignored;
  client_.close(ignored);  // ends the pending operations (their handlers see finished_)
  upstream_.close(ignored);
  Done done = std::move(done_);
  done(result_);
}

}  // namespace faasd::gateway
