// /system/secrets and /system/namespace bodies: provider::ParseSecret (then ValidateName),
// provider::ParseNamespace.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provider/types.h"

namespace provider = faasd::provider;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto s = provider::ParseSecret(body); s.ok()) {
    (void)provider::ValidateName("secret name", s->name);
    (void)s->bytes();
  }
  if (auto ns = provider::ParseNamespace(body); ns.ok()) (void)provider::ToJson(*ns);
  return 0;
}
