// Registry documents: registry::ParseManifest, ParseIndex (then SelectPlatform), ParseImageConfig.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "registry/registry.h"

namespace registry = faasd::registry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)registry::ParseManifest(body);
  if (auto index = registry::ParseIndex(body); index.ok()) {
    (void)registry::SelectPlatform(*index, registry::Platform{"linux", "amd64", ""});
    (void)registry::SelectPlatform(*index, registry::Platform{"linux", "arm", "v7"});
    (void)registry::SelectPlatform(*index, registry::Platform{"linux", "arm64", "v8"});
  }
  if (auto config = registry::ParseImageConfig(body); config.ok()) {
    (void)registry::ChainIds(config->diff_ids);
  }
  return 0;
}
