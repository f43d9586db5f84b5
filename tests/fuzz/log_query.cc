// GET /system/logs?QUERY: httplib's query parsing (what the internal server does before the
// handler), then gateway::ParseLogQuery.
#include <cstddef>
#include <cstdint>
#include <string>

#include "gateway/log_query.h"
#include "httplib.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  httplib::Params params;
  httplib::detail::parse_query_text(std::string(reinterpret_cast<const char*>(data), size),
                                    params);
  (void)faasd::gateway::ParseLogQuery(params);
  return 0;
}
