#include "gateway/upstream_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace faasd::gateway {

std::shared_ptr<UpstreamConnection> UpstreamPool::Take(const std::string& address) {
  auto it = idle_.find(address);
  while (it != idle_.end() && !it->second.empty()) {
    std::shared_ptr<UpstreamConnection> conn = std::move(it->second.back());
    it->second.pop_back();
    boost::system::error_code ignored;
    // A connection the function closed while idle is not handed out: look for its EOF (one
    // system call, where an armed readiness wait would cost one for every Put).
    char byte;
    const ssize_t n = ::recv(conn->stream.socket().native_handle(), &byte, 1,
                             MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      conn->reused = true;
      return conn;
    }
    conn->stream.socket().close(ignored);  // EOF, an error, or bytes nobody asked for
  }
  return nullptr;
}

void UpstreamPool::Put(std::shared_ptr<UpstreamConnection> conn) {
  auto& stack = idle_[conn->address];
  if (stack.size() >= max_idle_ || !conn->stream.socket().is_open()) return;
  conn->stream.expires_never();
  conn->idle_since = std::chrono::steady_clock::now();
  stack.push_back(std::move(conn));
}

size_t UpstreamPool::idle(const std::string& address) const {
  auto it = idle_.find(address);
  return it == idle_.end() ? 0 : it->second.size();
}

size_t UpstreamPool::Sweep(std::chrono::steady_clock::time_point cutoff) {
  size_t closed = 0;
  for (auto it = idle_.begin(); it != idle_.end();) {
    // Each stack is in the order Put pooled them (Take pops the newest): the stale lead it.
    auto& stack = it->second;
    auto fresh = std::find_if(stack.begin(), stack.end(),
                              [cutoff](const auto& c) { return c->idle_since >= cutoff; });
    for (auto c = stack.begin(); c != fresh; ++c) {
      boost::system::error_code ignored;
      (*c)->stream.socket().close(ignored);
    }
    closed += static_cast<size_t>(fresh - stack.begin());
    stack.erase(stack.begin(), fresh);
    if (stack.empty()) {
      idle_.erase(it++);
    } else {
      ++it;
    }
  }
  return closed;
}

}  // namespace faasd::gateway
