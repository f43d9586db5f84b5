// The one place that maps absl::Status to HTTP (see gateway.h for the table) and writes the
// plain-text error body upstream OpenFaaS clients expect.
#pragma once

#include "absl/status/status.h"
#include "httplib.h"

namespace faasd::gateway {

inline constexpr char kHttpStatusPayloadUrl[] = "faasd/http-status";

int HttpStatusFor(const absl::Status& status);
void WriteError(httplib::Response& res, int http_status, absl::string_view message);
void WriteError(httplib::Response& res, const absl::Status& status);

}  // namespace faasd::gateway
