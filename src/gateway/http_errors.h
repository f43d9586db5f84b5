// The one place that maps absl::Status to HTTP and writes gateway-made error answers.
//
//   InvalidArgument, FailedPrecondition, OutOfRange → 400   Unauthenticated → 401
//   PermissionDenied → 403   NotFound → 404   AlreadyExists, Aborted (in use) → 409
//   ResourceExhausted → 429   Unimplemented → 501   Unavailable → 503
//   DeadlineExceeded → 504   anything else → 500
// A payload under kHttpStatusPayloadUrl holding a decimal 4xx/5xx code overrides the table:
// the invoke path marks "the function could not be reached or broke the protocol" as 502
// (Unavailable alone means "no replica ready": 503), an oversized body as 413, an oversized
// head as 431; the provider marks registry failures as 502.
//
// Errors the gateway makes itself (not the function's) carry `X-OpenFaaS-Internal: proxy`
// and a plain-text body that names the function (or "gateway") and the cause.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "httplib.h"

namespace faasd::gateway {

inline constexpr char kHttpStatusPayloadUrl[] = "faasd/http-status";

int HttpStatusFor(const absl::Status& status);
// `status` with its HTTP code set through the payload (see the table above).
absl::Status WithHttpStatus(absl::Status status, int http_status);

// httplib answers (/system/*).
void WriteError(httplib::Response& res, int http_status, absl::string_view message);
void WriteError(httplib::Response& res, const absl::Status& status);
// A change the provider refused or failed (deploy, scale, remove, secret, namespace): logged at
// warning with its cause, so operators see it in the daemon's log, then written as WriteError.
void WriteFailure(httplib::Response& res, absl::string_view operation, const absl::Status& status);

// Whole HTTP/1.1 responses for the front end. `extra_headers` is "" or "Name: value\r\n"...
std::string RenderResponse(int http_status, absl::string_view content_type,
                           absl::string_view extra_headers, absl::string_view body,
                           bool close = false);
std::string RenderProxyError(const absl::Status& status, absl::string_view extra_headers,
                             bool close);

}  // namespace faasd::gateway
