#include "gateway/http_errors.h"

#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "boost/beast/http/status.hpp"

namespace faasd::gateway {

int HttpStatusFor(const absl::Status& status) {
  if (auto payload = status.GetPayload(kHttpStatusPayloadUrl)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code) && code >= 400 && code <= 599) return code;
  }
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:  // in use: a secret a function still names
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

absl::Status WithHttpStatus(absl::Status status, int http_status) {
  status.SetPayload(kHttpStatusPayloadUrl, absl::Cord(absl::StrCat(http_status)));
  return status;
}

std::string RenderResponse(int http_status, absl::string_view content_type,
                           absl::string_view extra_headers, absl::string_view body, bool close) {
  const auto reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(http_status));
  return absl::StrCat("HTTP/1.1 ", http_status, " ",
                      absl::string_view(reason.data(), reason.size()),
                      "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", body.size(),
                      "\r\n", extra_headers, close ? "Connection: close\r\n" : "", "\r\n", body);
}

std::string RenderProxyError(const absl::Status& status, absl::string_view extra_headers,
                             bool close) {
  return RenderResponse(HttpStatusFor(status), "text/plain; charset=utf-8",
                        absl::StrCat("X-OpenFaaS-Internal: proxy\r\n", extra_headers),
                        absl::StrCat(status.message(), "\n"), close);
}

void WriteError(httplib::Response& res, int http_status, absl::string_view message) {
  res.status = http_status;
  res.set_content(absl::StrCat(message, "\n"), "text/plain; charset=utf-8");
}

void WriteError(httplib::Response& res, const absl::Status& status) {
  WriteError(res, HttpStatusFor(status), status.message());
}

void WriteFailure(httplib::Response& res, absl::string_view operation, const absl::Status& status) {
  const int code = HttpStatusFor(status);
  LogWarning(operation, " failed (", code, "): ", status.message());
  WriteError(res, code, status.message());
}

}  // namespace faasd::gateway
