// ReplicaWaiter: requests held for a function without a ready replica, woken on their loop.
#include "gateway/replica_waiter.h"

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/io_context.hpp"
#include "catch.hpp"
#include "eventually.h"
#include "test_support.h"

namespace faasd::gateway::testing {
namespace {

TEST_CASE("a helper that woke its waiters is joined by the next wait, so helpers do not pile up",
          "[waiter]") {
  FakeRoutes routes;
  ReplicaWaiter waiter(routes);
  boost::asio::io_context ioc;
  std::atomic<int> woken{0};
  // One function after another goes from no replica to one, each with a request held for it:
  // as after a run of scale-from-zero wakes across many functions.
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("fn", i, ".openfaas-fn");
    routes.Set(key, {});
    waiter.Await(key, absl::Now() + absl::Seconds(10), ioc.get_executor(),
                 [&](ReplicaWaiter::Snapshot snap) { woken += snap != nullptr ? 1 : 0; });
    routes.Set(key, {{"127.0.0.1", 8080}});
    REQUIRE(::faasd::testing::Eventually([&] {
      ioc.poll();
      ioc.restart();
      return woken.load() == i + 1;
    }));
    // Joined here: the previous function's helper; this one's has returned or is returning.
    CHECK(waiter.helpers() <= 1);
  }
  waiter.Stop();
  CHECK(waiter.helpers() == 0);
}

}  // namespace
}  // namespace faasd::gateway::testing
