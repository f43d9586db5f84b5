// POST /system/scale-function/NAME bodies: provider::ParseScaleRequest.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provider/types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)faasd::provider::ParseScaleRequest(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
