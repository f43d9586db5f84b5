// Name checks the gateway applies before anything reaches the provider: function names and
// namespaces are DNS labels ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters), which
// also keeps "../x", "/" and empty names out of paths built from them.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace faasd::gateway {

inline bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// `what` names the thing: "function name", "namespace".
inline absl::Status CheckName(absl::string_view what, absl::string_view name) {
  if (IsDnsLabel(name)) return absl::OkStatus();
  absl::string_view shown = name.size() > 80 ? name.substr(0, 80) : name;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid ", what, " \"", shown, name.size() > 80 ? "...\"" : "\"",
      ": must be 1-63 characters of a-z, 0-9 and '-', starting and ending alphanumeric"));
}

}  // namespace faasd::gateway
