#include "containerd/event_engine.h"

#include <dirent.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "catch.hpp"
#include "containerd/client.h"
#include "eventually.h"

namespace faasd::containerd {
namespace {

using faasd::testing::Eventually;
using namespace std::chrono_literals;

// The names of this process's threads (/proc/self/task/*/comm).
std::vector<std::string> ThreadNames() {
  std::vector<std::string> names;
  DIR* dir = ::opendir("/proc/self/task");
  REQUIRE(dir != nullptr);
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    names.push_back(name);
  }
  ::closedir(dir);
  return names;
}

// Records the order tasks ran in, from the engine's thread.
struct Journal {
  absl::Mutex mu;
  std::vector<int> ran ABSL_GUARDED_BY(mu);
  void Add(int n) {
    absl::MutexLock l(&mu);
    ran.push_back(n);
  }
  std::vector<int> Get() {
    absl::MutexLock l(&mu);
    return ran;
  }
};

TEST_CASE("the engine has no thread until a task comes, and none again after the linger") {
  OnDemandEventEngine engine(absl::Milliseconds(50));
  CHECK_FALSE(engine.HasThread());
  std::atomic<bool> ran{false};
  std::atomic<bool> on_caller{true};
  const std::thread::id caller = std::this_thread::get_id();
  engine.Run([&] {
    on_caller = std::this_thread::get_id() == caller;
    ran = true;
  });
  REQUIRE(Eventually([&] { return ran.load(); }));
  CHECK_FALSE(on_caller.load());
  REQUIRE(Eventually([&] { return !engine.HasThread(); }));

  // A new task after the thread left starts another.
  std::atomic<bool> again{false};
  engine.Run([&] { again = true; });
  REQUIRE(Eventually([&] { return again.load(); }));
}

TEST_CASE("timed tasks run in the order they are due, not the order they came in") {
  OnDemandEventEngine engine;
  Journal journal;
  engine.RunAfter(60ms, [&] { journal.Add(3); });
  engine.RunAfter(20ms, [&] { journal.Add(1); });
  engine.RunAfter(40ms, [&] { journal.Add(2); });
  engine.Run([&] { journal.Add(0); });
  REQUIRE(Eventually([&] { return journal.Get().size() == 4; }));
  CHECK(journal.Get() == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("a task is not run before it is due") {
  OnDemandEventEngine engine;
  std::atomic<bool> ran{false};
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int64_t> after_ms{0};
  engine.RunAfter(80ms, [&] {
    after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
    ran = true;
  });
  REQUIRE(Eventually([&] { return ran.load(); }));
  CHECK(after_ms.load() >= 80);
}

TEST_CASE("a cancelled task never runs and its closure is released; a run one cannot be") {
  OnDemandEventEngine engine;
  auto held = std::make_shared<int>(7);
  std::atomic<bool> ran{false};
  auto handle = engine.RunAfter(10s, [&ran, held] { ran = true; });
  CHECK(held.use_count() == 2);
  CHECK(engine.Cancel(handle));
  CHECK(held.use_count() == 1);
  CHECK_FALSE(engine.Cancel(handle));

  std::atomic<bool> done{false};
  auto quick = engine.RunAfter(1ms, [&] { done = true; });
  REQUIRE(Eventually([&] { return done.load(); }));
  CHECK_FALSE(engine.Cancel(quick));
  CHECK_FALSE(ran.load());
}

TEST_CASE("a Closure is run and left to its owner") {
  struct Counted : grpc_event_engine::experimental::EventEngine::Closure {
    std::atomic<int> runs{0};
    void Run() override { ++runs; }
  } closure;
  OnDemandEventEngine engine;
  engine.Run(&closure);
  engine.RunAfter(5ms, &closure);
  REQUIRE(Eventually([&] { return closure.runs.load() == 2; }));
}

TEST_CASE("a task may schedule another and knows it runs on the engine's thread") {
  OnDemandEventEngine engine;
  std::atomic<bool> inner{false};
  std::atomic<bool> worker{false};
  engine.Run([&] {
    worker = engine.IsWorkerThread();
    engine.RunAfter(1ms, [&] { inner = true; });
  });
  REQUIRE(Eventually([&] { return inner.load(); }));
  CHECK(worker.load());
  CHECK_FALSE(engine.IsWorkerThread());
}

TEST_CASE("destroying the engine drops what is still scheduled, without waiting for it") {
  auto held = std::make_shared<int>(1);
  std::atomic<bool> ran{false};
  const auto start = std::chrono::steady_clock::now();
  {
    OnDemandEventEngine engine;
    engine.RunAfter(30s, [&ran, held] { ran = true; });
    engine.Run([] {});
  }
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_FALSE(ran.load());
  CHECK(held.use_count() == 1);
}

struct NoConfig : grpc_event_engine::experimental::EndpointConfig {
  absl::optional<int> GetInt(absl::string_view) const override { return absl::nullopt; }
  absl::optional<absl::string_view> GetString(absl::string_view) const override {
    return absl::nullopt;
  }
  void* GetVoidPointer(absl::string_view) const override { return nullptr; }
};

TEST_CASE("connections are refused on the engine's thread") {
  OnDemandEventEngine engine;
  std::atomic<bool> answered{false};
  std::atomic<bool> unimplemented{false};
  grpc_event_engine::experimental::EventEngine::ResolvedAddress addr;
  engine.Connect(
      [&](absl::StatusOr<std::unique_ptr<grpc_event_engine::experimental::EventEngine::Endpoint>>
              endpoint) {
        unimplemented = absl::IsUnimplemented(endpoint.status());
        answered = true;
      },
      addr, NoConfig{}, grpc_event_engine::experimental::MemoryAllocator(), 1s);
  REQUIRE(Eventually([&] { return answered.load(); }));
  CHECK(unimplemented.load());
}

// Run alone (its own test() in meson.build): it must install the engine before this process
// makes its first gRPC channel.
TEST_CASE("with the engine installed, a gRPC channel and call leave no engine threads", "[grpc]") {
  REQUIRE(UseOnDemandEventEngine());
  Client client("/nonexistent/faasd-event-engine-test.sock");
  absl::StatusOr<std::string> version = client.version.Version(absl::Milliseconds(300));
  CHECK_FALSE(version.ok());
  const std::vector<std::string> names = ThreadNames();
  for (const std::string& name : names) {
    INFO(name);
    CHECK(name != "event_engine");
    CHECK(name != "timer_manager");
  }
}

}  // namespace
}  // namespace faasd::containerd
