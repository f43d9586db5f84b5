#include "gateway/worker_pool.h"

#include <sys/prctl.h>

#include <atomic>
#include <string>

#include "absl/synchronization/notification.h"
#include "catch.hpp"
#include "eventually.h"

using faasd::gateway::ElasticWorkerPool;
using ::faasd::testing::Eventually;

TEST_CASE("ElasticWorkerPool grows to max under blocking work and shrinks back when idle") {
  ElasticWorkerPool pool(2, 8, absl::Milliseconds(100));
  CHECK(pool.threads() == 2);
  absl::Notification release;
  std::atomic<int> running{0}, done{0};
  for (int i = 0; i < 12; ++i) {
    pool.enqueue([&] {
      ++running;
      release.WaitForNotificationWithTimeout(absl::Seconds(10));
      ++done;
    });
  }
  // Eight run at once (the max); the other four wait in the queue.
  REQUIRE(Eventually([&] { return running.load() == 8; }, absl::Seconds(5)));
  CHECK(pool.threads() == 8);
  release.Notify();
  REQUIRE(Eventually([&] { return done.load() == 12; }, absl::Seconds(5)));
  CHECK(Eventually([&] { return pool.threads() == 2; }, absl::Seconds(5)));
  // The six that exited idle were joined by one another, without waiting for new work.
  CHECK(pool.unjoined() <= 1);
  // Still serves after shrinking.
  absl::Notification ran;
  pool.enqueue([&] { ran.Notify(); });
  CHECK(ran.WaitForNotificationWithTimeout(absl::Seconds(5)));
  pool.shutdown();
}

TEST_CASE("ElasticWorkerPool shutdown runs queued work and joins") {
  std::atomic<int> done{0};
  {
    ElasticWorkerPool pool(1, 1, absl::Seconds(30));
    for (int i = 0; i < 5; ++i) pool.enqueue([&] { ++done; });
    pool.shutdown();
  }
  CHECK(done.load() == 5);
}

TEST_CASE("ElasticWorkerPool names its threads") {
  ElasticWorkerPool pool(0, 2, absl::Seconds(30), "faasd-test-pool");
  absl::Notification ran;
  char name[16] = {};
  pool.enqueue([&] {
    ::prctl(PR_GET_NAME, name, 0, 0, 0);
    ran.Notify();
  });
  REQUIRE(ran.WaitForNotificationWithTimeout(absl::Seconds(5)));
  CHECK(std::string(name) == "faasd-test-pool");
  pool.shutdown();
}
