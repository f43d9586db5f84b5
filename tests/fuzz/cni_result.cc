// What CNI plugins print: network::ParseAddResult then ContainerIpv4 (an ADD's result), and
// PluginExitStatus (a failed plugin's error JSON).
#include <cstddef>
#include <cstdint>
#include <string>

#include "network/cni_protocol.h"

namespace network = faasd::network;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string out(reinterpret_cast<const char*>(data), size);
  if (auto result = network::ParseAddResult("cni bridge ADD container fuzz", out); result.ok()) {
    (void)network::ContainerIpv4(*result);
  }
  network::ProcessOutput failed;
  failed.exit_code = 1;
  failed.stdout_data = out;
  failed.stderr_data = out;
  (void)network::PluginExitStatus("cni bridge ADD container fuzz", failed);
  return 0;
}
