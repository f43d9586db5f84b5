// POST/PUT /system/functions bodies: provider::ParseDeployment, then ValidateDeployment and
// ToJson as the deploy path does.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provider/types.h"

namespace provider = faasd::provider;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto d = provider::ParseDeployment(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!d.ok()) return 0;
  (void)provider::ValidateDeployment(*d);
  (void)provider::ToJson(*d).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
