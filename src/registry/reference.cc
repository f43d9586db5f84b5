// Reference and Platform parsing, following docker/distribution's reference grammar and
// containerd's platform normalization.
#include <sys/utsname.h>

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "registry/auth.h"
#include "registry/registry.h"

namespace faasd::registry {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | "-"+
bool IsValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// domain := host (":" port)?, host := label ("." label)* | "[" ipv6 "]"
bool IsValidDomain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d;
  bool ipv6 = d.front() == '[';
  if (ipv6) {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
    host = {};
    d = d.substr(close + 1);
    if (d.empty()) return true;
    if (d.front() != ':') return false;
  } else {
    size_t colon = d.find(':');
    host = d.substr(0, colon);
    d = colon == std::string_view::npos ? std::string_view() : d.substr(colon);
  }
  if (!d.empty()) {  // ":port"
    std::string_view port = d.substr(1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
  }
  if (ipv6) return true;
  if (host.empty()) return false;
  for (absl::string_view label : absl::StrSplit(Av(host), '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

bool IsValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// Docker's rule: the first component is a domain when it looks like a host name (has "." or ":"),
// is "localhost", or has upper-case letters (repository names cannot).
bool LooksLikeDomain(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
         absl::AsciiStrToLower(Av(first)) != first;
}

std::string NormalizeArch(std::string arch, std::string* variant) {
  arch = absl::AsciiStrToLower(arch);
  if (arch == "x86_64" || arch == "x86-64") return "amd64";
  if (arch == "i386" || arch == "i686") return "386";
  if (arch == "aarch64") arch = "arm64";
  if (arch == "armhf") {
    if (variant->empty()) *variant = "v7";
    return "arm";
  }
  if (arch == "armel") {
    if (variant->empty()) *variant = "v6";
    return "arm";
  }
  if ((arch == "arm" || arch == "arm64") && !variant->empty() && std::isdigit((*variant)[0])) {
    *variant = "v" + *variant;  // "linux/arm/7" means v7
  }
  return arch;
}

}  // namespace

absl::StatusOr<Reference> Reference::Parse(std::string_view s) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("image reference \"", Av(s), "\": ", Av(why)));
  };
  if (s.empty()) return invalid("empty");
  Reference ref;
  std::string_view rest = s;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!IsValidDigest(ref.digest)) {
      return invalid("digest must be sha256:<64 lower-case hex> or sha512:<128 hex>");
    }
  }
  // A tag follows the last ':' after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!IsValidTag(ref.tag)) return invalid("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  }
  if (rest.empty()) return invalid("no repository name");
  size_t first_slash = rest.find('/');
  std::string_view name = rest;
  if (first_slash != std::string_view::npos && LooksLikeDomain(rest.substr(0, first_slash))) {
    ref.domain = std::string(rest.substr(0, first_slash));
    name = rest.substr(first_slash + 1);
    if (!IsValidDomain(ref.domain)) return invalid("bad registry host");
  } else {
    ref.domain = "docker.io";
  }
  if (ref.domain == "index.docker.io") ref.domain = "docker.io";
  if (name.empty()) return invalid("no repository name");
  if (absl::AsciiStrToLower(Av(name)) != name) return invalid("repository name must be lowercase");
  for (absl::string_view component : absl::StrSplit(Av(name), '/')) {
    if (component.empty()) return invalid("empty path component");
    if (!IsValidPathComponent(std::string_view(component.data(), component.size()))) {
      return invalid(absl::StrCat("bad path component \"", component, "\""));
    }
  }
  ref.path = std::string(name);
  if (ref.domain == "docker.io" && ref.path.find('/') == std::string::npos) {
    ref.path = "library/" + ref.path;
  }
  if (ref.domain.size() + 1 + ref.path.size() > kMaxNameLength) {
    return invalid("name longer than 255 characters");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string Reference::Name() const { return absl::StrCat(domain, "/", path); }

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

std::string Reference::TagOrDigest() const { return digest.empty() ? tag : digest; }

Platform Platform::Host() {
  Platform p;
  p.os = "linux";
  struct utsname u;
  std::string machine = uname(&u) == 0 ? u.machine : "";
  if (machine == "aarch64" || machine == "arm64" || machine == "armv8l") {
    // armv8l is a 32-bit userland on a 64-bit core; uname already tells us the kernel's view.
    p.architecture = machine == "armv8l" ? "arm" : "arm64";
    p.variant = machine == "armv8l" ? "v7" : "v8";
  } else if (absl::StartsWith(machine, "armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (absl::StartsWith(machine, "armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (absl::StartsWith(machine, "armv5")) {
    p.architecture = "arm";
    p.variant = "v5";
  } else {
    std::string variant;
    p.architecture = NormalizeArch(machine, &variant);
    p.variant = variant;
  }
  return p;
}

absl::StatusOr<Platform> Platform::Parse(std::string_view s) {
  std::vector<std::string> parts = absl::StrSplit(Av(s), '/');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty() ||
      (parts.size() == 3 && parts[2].empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("platform \"", Av(s), "\": want os/architecture[/variant]"));
  }
  Platform p;
  p.os = absl::AsciiStrToLower(parts[0]);
  p.variant = parts.size() == 3 ? absl::AsciiStrToLower(parts[2]) : "";
  p.architecture = NormalizeArch(parts[1], &p.variant);
  return p;
}

std::string Platform::String() const {
  std::string out = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&out, "/", variant);
  return out;
}

}  // namespace faasd::registry
