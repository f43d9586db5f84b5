// Kubernetes quantities of limits and requests: provider::ParseMemoryQuantity, ParseCpuQuantity.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "provider/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view q(reinterpret_cast<const char*>(data), size);
  // The contract: a parsed quantity is never negative.
  if (auto bytes = faasd::provider::ParseMemoryQuantity(q); bytes.ok() && *bytes < 0) std::abort();
  if (auto millis = faasd::provider::ParseCpuQuantity(q); millis.ok() && *millis < 0) std::abort();
  return 0;
}
