#include "gateway/basic_auth.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace faasd::gateway {
namespace {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Runs over the longer input whatever the contents, so timing reveals at most the length.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

bool DecodeBase64(absl::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  // Strict, as Go's StdEncoding is upstream: padded to a multiple of 4, '=' only at the end.
  if (in.size() % 4 != 0) return false;
  size_t pad = in.find('=');
  if (pad != absl::string_view::npos &&
      (in.size() - pad > 2 || in.find_first_not_of('=', pad) != absl::string_view::npos)) {
    return false;
  }
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

}  // namespace

bool BasicAuthorized(absl::string_view header, const Credentials& credentials) {
  if (!absl::StartsWithIgnoreCase(header, "Basic ")) return false;
  std::string decoded;
  if (!DecodeBase64(absl::StripAsciiWhitespace(header.substr(6)), &decoded)) return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  // Both halves are always compared: no early exit on a wrong user.
  const bool user_ok =
      ConstantTimeEquals(absl::string_view(decoded).substr(0, colon), credentials.user);
  const bool password_ok =
      ConstantTimeEquals(absl::string_view(decoded).substr(colon + 1), credentials.password);
  return user_ok & password_ok;
}

}  // namespace faasd::gateway
