// Authorization header values of /system/* requests: gateway::BasicAuthorized.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gateway/basic_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const faasd::gateway::Credentials kCredentials{"admin", "s3cr3t"};
  const absl::string_view header(reinterpret_cast<const char*>(data), size);
  // Only the credentials' own encoding may pass ("Basic YWRtaW46czNjcjN0", give or take the
  // scheme's case and surrounding white space).
  if (faasd::gateway::BasicAuthorized(header, kCredentials) &&
      header.find("YWRtaW46czNjcjN0") == absl::string_view::npos) {
    std::abort();
  }
  return 0;
}
