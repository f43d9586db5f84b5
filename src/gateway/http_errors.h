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
// A change the provider refused or failed (deploy, scale, remove, secret, namespace): logged at
// warning with its cause, so operators see it in the daemon's log, then written as WriteError.
void WriteFailure(httplib::Response& res, absl::string_view operation, const absl::Status& status);

}  // namespace faasd::gateway
