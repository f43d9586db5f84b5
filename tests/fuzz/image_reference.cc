// Image references and platforms: registry::Reference::Parse, registry::Platform::Parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/registry.h"

using faasd::registry::Platform;
using faasd::registry::Reference;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto ref = Reference::Parse(s); ref.ok()) {
    // What a reference prints must parse back to the same reference (pull, import and the
    // image store all pass references around as strings).
    auto again = Reference::Parse(ref->String());
    if (!again.ok() || again->domain != ref->domain || again->path != ref->path ||
        again->tag != ref->tag || again->digest != ref->digest) {
      std::abort();
    }
    (void)ref->Name();
    (void)ref->TagOrDigest();
  }
  if (auto p = Platform::Parse(s); p.ok()) (void)p->String();
  return 0;
}
