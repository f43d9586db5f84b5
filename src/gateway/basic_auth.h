// HTTP Basic credentials check for /system/*, shared by the front end (which refuses before
// reading any body byte) and the internal /system server (which checks again: its loopback
// port is reachable by local users). Constant-time in the contents of both halves.
#pragma once

#include "absl/strings/string_view.h"
#include "gateway/gateway.h"

namespace faasd::gateway {

// `authorization` is the Authorization header's value ("" when absent).
bool BasicAuthorized(absl::string_view authorization, const Credentials& credentials);

}  // namespace faasd::gateway
