// fwatchdog: OpenFaaS watchdog (classic and of-watchdog modes). Configured by env only; see
// watchdog.h for the contract.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "watchdog/watchdog.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-version") == 0 || std::strcmp(argv[i], "--version") == 0) {
      std::printf("fwatchdog (faasd-cpp)\n");
      return 0;
    }
  }
  auto config = faasd::watchdog::ConfigFromEnv([](const char* name) { return std::getenv(name); });
  if (!config.ok()) {
    std::fprintf(stderr, "fwatchdog: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  int rc = faasd::watchdog::Run(*config);
  std::fflush(nullptr);
  // Connection threads are detached and may still be blocked on idle keep-alive sockets:
  // leave without running static destructors under them.
  ::_exit(rc);
}
