// gRPC's EventEngine for this daemon: the callbacks and timers gRPC hands it run on one thread
// that starts when there is work and leaves after `linger` without any.
//
// gRPC 1.51 (Debian 12) creates its default engine at the first channel: a timer thread and a
// pool of max(2, cores) threads, kept for good. Its client paths the daemon uses (unary calls
// and server streams to containerd over a Unix socket, on the iomgr poller) hold the engine but
// schedule nothing on it: under gdb, neither Run nor RunAfter of the default engine was called
// in a daemon's start, idle and /system calls. So this engine keeps no thread while nothing is
// scheduled, and gRPC's own I/O, timers and executor stay as they were.
//
// Network entry points (Connect, CreateListener, a DNS resolver) belong to gRPC's experimental
// EventEngine transport, off by default in 1.51: they refuse. UseOnDemandEventEngine() leaves
// gRPC's engine in place when GRPC_EXPERIMENTS is set, since an experiment may need them.
//
// Thread-safe.
#pragma once

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "grpc/event_engine/event_engine.h"

namespace faasd::containerd {

// Makes gRPC create an OnDemandEventEngine wherever it would create its default one. Call it
// before the first gRPC channel. Returns false (and changes nothing) when GRPC_EXPERIMENTS is
// set.
bool UseOnDemandEventEngine();

class OnDemandEventEngine final : public grpc_event_engine::experimental::EventEngine {
 public:
  explicit OnDemandEventEngine(absl::Duration linger = absl::Seconds(10));
  // Tasks still scheduled are dropped unrun (the interface makes that the caller's error).
  ~OnDemandEventEngine() override;

  bool IsWorkerThread() override;
  std::unique_ptr<DNSResolver> GetDNSResolver(const DNSResolver::ResolverOptions& options) override;
  absl::StatusOr<std::unique_ptr<Listener>> CreateListener(
      Listener::AcceptCallback on_accept, absl::AnyInvocable<void(absl::Status)> on_shutdown,
      const grpc_event_engine::experimental::EndpointConfig& config,
      std::unique_ptr<grpc_event_engine::experimental::MemoryAllocatorFactory> factory) override;
  // Answers on_connect with UNIMPLEMENTED, on the engine's thread.
  ConnectionHandle Connect(OnConnectCallback on_connect, const ResolvedAddress& addr,
                           const grpc_event_engine::experimental::EndpointConfig& args,
                           grpc_event_engine::experimental::MemoryAllocator memory_allocator,
                           Duration timeout) override;
  bool CancelConnect(ConnectionHandle handle) override;

  void Run(Closure* closure) override;
  void Run(absl::AnyInvocable<void()> closure) override;
  TaskHandle RunAfter(Duration when, Closure* closure) override;
  TaskHandle RunAfter(Duration when, absl::AnyInvocable<void()> closure) override;
  bool Cancel(TaskHandle handle) override;

  // Whether the engine's thread exists now (tests).
  bool HasThread() const;

 private:
  struct State;  // shared with the thread, which may outlive the engine (see the destructor)

  TaskHandle Schedule(Duration when, absl::AnyInvocable<void()> task);
  static void Work(const std::shared_ptr<State>& state);

  const std::shared_ptr<State> state_;
};

}  // namespace faasd::containerd
