// The query of GET /system/logs, read with faas-provider's Go semantics: the last of repeated
// parameters, strconv.Atoi for tail, strconv.ParseBool for follow (its error read as false),
// time.Parse(RFC3339) for since. Private to the gateway; pure, so it is unit-tested and fuzzed
// (tests/fuzz/log_query.cc).
#pragma once

#include "absl/status/statusor.h"
#include "httplib.h"
#include "provider/provider.h"

namespace faasd::gateway {

// The request's name (required), namespace ("" → the default), instance, tail, since and
// follow. A bad name or namespace is InvalidArgument (400); a tail that is not an integer or a
// since that is not RFC 3339 is marked 422 "could not parse the log request: ..." (http_errors.h).
absl::StatusOr<provider::LogRequest> ParseLogQuery(const httplib::Params& params);

}  // namespace faasd::gateway
