#include "gateway/front_end.h"

#include <malloc.h>
#include <sys/socket.h>

#include <future>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "gateway/client_session.h"
#include "gateway/http_errors.h"
#include "gateway/session_slab.h"
#include "gateway/worker_pool.h"

namespace faasd::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr int kListenBacklog = 4096;
// Connections taken from the backlog at once after each accept completes (with it, 64).
constexpr int kAcceptBatch = 63;
// Async publishes and cancels wait for JetStream's answer (up to the publish timeout). Both side
// pools start no thread: one appears when work does, and leaves after kSidePoolIdle without any,
// so an appliance that takes no async call and no /healthz keeps none.
constexpr size_t kQueueOpsThreads = 8;
// 10 s: /healthz polled every few seconds keeps its thread; one call after a deploy does not
// leave a thread for half a minute.
constexpr absl::Duration kSidePoolIdle = absl::Seconds(10);
// What std::allocate_shared puts beside a ClientSession in its one allocation (reference counts,
// the allocator, a vtable pointer), with room to spare; a larger request falls back to the heap.
constexpr size_t kSessionSlotExtra = 64;

void BindListener(LoopAcceptor& acceptor, const std::string& host, int port, error_code& ec) {
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) return;
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  // SO_REUSEADDR only: SO_REUSEPORT would let a second daemon share the port.
  if (acceptor.open(endpoint.protocol(), ec);
      !ec && (acceptor.set_option(tcp::acceptor::reuse_address(true), ec), !ec) &&
      (acceptor.bind(endpoint, ec), !ec)) {
    acceptor.listen(kListenBacklog, ec);
  }
}

// Takes over a socket someone else bound and listens on (systemd's socket unit, a test): it
// must be a listening TCP socket; its backlog is the holder's.
error_code AdoptListener(LoopAcceptor& acceptor, int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int type = 0, listening = 0;
  socklen_t ilen = sizeof(int);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0) {
    return error_code(errno, boost::system::system_category());
  }
  if ((addr.ss_family != AF_INET && addr.ss_family != AF_INET6) || type != SOCK_STREAM ||
      !listening) {
    return asio::error::make_error_code(asio::error::operation_not_supported);
  }
  error_code ec;
  acceptor.assign(addr.ss_family == AF_INET ? tcp::v4() : tcp::v6(), fd, ec);
  return ec;
}
}  // namespace

struct FrontEnd::State {
  State(FrontEndOptions options, provider::FunctionProvider& provider, metrics::Metrics& metrics)
      : waiter(provider.Routes()),
        blocking(0, 1, kSidePoolIdle, "faasd-blocking"),
        queue_ops(0, kQueueOpsThreads, kSidePoolIdle, "faasd-queue-ops"),
        shared{std::move(options), provider, metrics, waiter, blocking, queue_ops} {}

  void Accept();
  void OnAccept(size_t loop, LoopSocket socket);
  void TrimAfterBursts();

  // First, so destroyed last: a session may end on any thread that held the last reference.
  SessionSlab sessions{sizeof(ClientSession) + kSessionSlotExtra};
  ReplicaWaiter waiter;
  ElasticWorkerPool blocking;
  ElasticWorkerPool queue_ops;
  FrontEndShared shared;
  // Loops last: their destruction ends the sessions, which use everything above.
  std::vector<std::unique_ptr<EventLoop>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::optional<LoopAcceptor> acceptor;
  std::optional<LoopTimer> backoff;
  std::optional<LoopTimer> trim;
  size_t peak_open = 0;  // most connections open since the last trim (acceptor's loop only)
  std::atomic<size_t> swept{0};  // idle upstream connections closed since the last trim
  size_t next_loop = 0;
  bool running = false;
};

void FrontEnd::State::Accept() {
  const size_t loop = next_loop++ % loops.size();
  acceptor->async_accept(loops[loop]->ioc, [this, loop](error_code ec, LoopSocket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory: pause accepting briefly instead of spinning.
      LogWarning("gateway: accept: ", ec.message());
      backoff->expires_after(std::chrono::milliseconds(50));
      backoff->async_wait([this](error_code ec) {
        if (!ec) Accept();
      });
      return;
    }
    OnAccept(loop, std::move(socket));
    // Whatever else waits in the backlog is taken now: one accept per round of this loop
    // would leave a burst of new connections, their requests already sent, queued behind
    // the loop's traffic. Errors (would_block among them) are left to the async accept.
    for (int i = 0; i < kAcceptBatch; ++i) {
      const size_t next = next_loop++ % loops.size();
      LoopSocket more(loops[next]->ioc);
      error_code e;
      acceptor->accept(more, e);
      if (e) break;
      OnAccept(next, std::move(more));
    }
    Accept();
  });
}

void FrontEnd::State::OnAccept(size_t loop, LoopSocket socket) {
  if (shared.open.load(std::memory_order_relaxed) >= shared.options.max_connections) {
    // Best effort, without blocking the acceptor: a fresh socket's send buffer is empty.
    static const std::string kFull = RenderProxyError(
        absl::UnavailableError(absl::StrCat("gateway: too many open connections (limit ",
                                            shared.options.max_connections, ")")),
        "", true);
    error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(kFull), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
    return;
  }
  peak_open = std::max(peak_open, shared.open.fetch_add(1, std::memory_order_relaxed) + 1);
  auto session = std::allocate_shared<ClientSession>(SlabAllocator<ClientSession>(sessions),
                                                     std::move(socket), *loops[loop], shared);
  asio::post(loops[loop]->ioc, [session] { session->Start(); });
}

void FrontEnd::State::TrimAfterBursts() {
  trim->expires_after(std::chrono::seconds(5));
  trim->async_wait([this](error_code ec) {
    if (ec) return;
    // Upstream connections idle past their timeout close, each on its own loop; what they
    // held counts toward the next tick's trim.
    const auto cutoff = std::chrono::steady_clock::now() -
                        std::chrono::microseconds(
                            absl::ToInt64Microseconds(shared.options.upstream_idle_timeout));
    for (auto& loop : loops) {
      EventLoop* l = loop.get();
      asio::post(l->ioc, [this, l, cutoff] {
        swept.fetch_add(l->pool.Sweep(cutoff), std::memory_order_relaxed);
      });
    }
    // After a burst of connections has gone, hand the heap it grew back to the system: glibc
    // keeps freed memory below the top of its heaps otherwise.
    const size_t open = shared.open.load(std::memory_order_relaxed);
    const bool burst_over = peak_open > 256 && open < 64;
    if (burst_over || swept.load(std::memory_order_relaxed) >= 64) {
      ::malloc_trim(0);
      swept.store(0, std::memory_order_relaxed);
      if (burst_over) peak_open = open;
    }
    TrimAfterBursts();
  });
}

FrontEnd::FrontEnd(FrontEndOptions options, provider::FunctionProvider& provider,
                   metrics::Metrics& metrics)
    : state_(std::make_unique<State>(std::move(options), provider, metrics)) {}

FrontEnd::~FrontEnd() { Stop(); }

absl::Status FrontEnd::Start() {
  State& s = *state_;
  if (s.running) return absl::FailedPreconditionError("gateway: front end already started");
  const FrontEndOptions& o = s.shared.options;
  size_t n = o.loops > 0 ? static_cast<size_t>(o.loops) : std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  for (size_t i = 0; i < n; ++i) s.loops.push_back(std::make_unique<EventLoop>());

  std::string address = absl::StrCat(o.host, ":", o.port);
  s.acceptor.emplace(s.loops[0]->ioc);
  s.backoff.emplace(s.loops[0]->ioc);
  s.trim.emplace(s.loops[0]->ioc);
  error_code ec;
  if (o.listen_fd >= 0) {
    address = absl::StrCat("inherited socket ", o.listen_fd);
    ec = AdoptListener(*s.acceptor, o.listen_fd);
  } else {
    BindListener(*s.acceptor, o.host, o.port, ec);
  }
  if (ec) {
    s.acceptor.reset();
    s.backoff.reset();
    s.trim.reset();
    s.loops.clear();
    return absl::UnavailableError(absl::StrCat("gateway: listen ", address, ": ", ec.message()));
  }
  // Accepts beyond the first of a batch must not block the loop (State::Accept).
  s.acceptor->non_blocking(true, ec);
  port_ = s.acceptor->local_endpoint().port();
  listener_fd_ = s.acceptor->native_handle();
  s.Accept();
  s.TrimAfterBursts();
  for (auto& loop : s.loops) {
    s.guards.push_back(asio::make_work_guard(loop->ioc));
    EventLoop* l = loop.get();
    loop->thread = std::thread([l] {
      NameThisThread("faasd-loop");
      for (;;) {
        try {
          l->ioc.run();
          return;
        } catch (const std::exception& e) {  // a bug in a handler must not end the gateway
          LogError("gateway: event loop: unexpected exception: ", e.what());
        }
      }
    });
  }
  s.running = true;
  LogInfo("gateway: ", n, " event loops on ", o.host, ":", port_);
  return absl::OkStatus();
}

void FrontEnd::Drain(absl::Duration grace) {
  State& s = *state_;
  if (!s.running) return;
  s.shared.draining.store(true);
  listener_fd_ = -1;
  auto closed = std::make_shared<std::promise<void>>();
  asio::post(s.loops[0]->ioc, [&s, closed] {
    error_code ignored;
    s.acceptor->close(ignored);
    s.backoff->cancel();
    closed->set_value();
  });
  const absl::Time deadline = absl::Now() + grace;
  closed->get_future().wait_for(std::chrono::seconds(1));
  // Polled with a deadline: sessions on every loop count themselves in `busy`.
  size_t busy = s.shared.busy.load();
  while (busy > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    busy = s.shared.busy.load();
  }
  if (busy > 0) {
    LogWarning("gateway: ", busy, " requests still in progress after the shutdown grace of ",
               absl::FormatDuration(grace), "; closing them");
  } else {
    LogInfo("gateway: drained: no request in progress");
  }
}

void FrontEnd::Stop() {
  State& s = *state_;
  if (!s.running) return;
  s.running = false;
  listener_fd_ = -1;
  asio::post(s.loops[0]->ioc, [&s] {
    error_code ignored;
    s.acceptor->close(ignored);
    s.backoff->cancel();
    s.trim->cancel();
  });
  s.waiter.Stop();
  s.blocking.shutdown();
  s.queue_ops.shutdown();
  s.guards.clear();
  for (auto& loop : s.loops) loop->ioc.stop();
  for (auto& loop : s.loops) {
    if (loop->thread.joinable()) loop->thread.join();
  }
  s.acceptor.reset();
  s.backoff.reset();
  s.trim.reset();
  s.loops.clear();  // ends every session and pooled connection
}

}  // namespace faasd::gateway
