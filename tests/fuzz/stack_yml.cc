// faas-cli's stack.yml as `faasd build` reads it: builder::ParseStack.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "builder/builder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)faasd::builder::ParseStack(std::string_view(reinterpret_cast<const char*>(data), size),
                                   "/srv/fns");
  return 0;
}
