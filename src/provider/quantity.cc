#include "provider/quantity.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace faasd::provider {
namespace {

struct Suffix {
  const char* text;
  double factor;
};
// Binary suffixes first so "Mi" wins over "M".
constexpr Suffix kSuffixes[] = {
    {"Ki", 1024.0},
    {"Mi", 1048576.0},
    {"Gi", 1073741824.0},
    {"Ti", 1099511627776.0},
    {"Pi", 1125899906842624.0},
    {"Ei", 1152921504606846976.0},
    {"k", 1e3},
    {"K", 1e3},
    {"M", 1e6},
    {"G", 1e9},
    {"T", 1e12},
    {"P", 1e15},
    {"E", 1e18},
    {"m", 1e-3},
};

absl::StatusOr<double> ParseQuantity(std::string_view q, const char* what) {
  std::string s(q);
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(what, " quantity \"", s, "\" is invalid"));
  };
  if (s.empty() || s.size() > 64) return bad();
  double factor = 1;
  for (const auto& suf : kSuffixes) {
    std::string_view t(suf.text);
    if (s.size() > t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0) {
      factor = suf.factor;
      s.resize(s.size() - t.size());
      break;
    }
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return bad();
    }
  }
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    return bad();
  }
  if (used != s.size() || !std::isfinite(v) || v < 0) return bad();
  return v * factor;
}

}  // namespace

absl::StatusOr<int64_t> ParseMemoryQuantity(std::string_view q) {
  absl::StatusOr<double> v = ParseQuantity(q, "memory");
  if (!v.ok()) return v.status();
  if (*v > 9.2e18)
    return absl::InvalidArgumentError(
        absl::StrCat("memory quantity \"", std::string(q), "\" is too large"));
  return static_cast<int64_t>(std::ceil(*v));
}

absl::StatusOr<int64_t> ParseCpuQuantity(std::string_view q) {
  absl::StatusOr<double> v = ParseQuantity(q, "cpu");
  if (!v.ok()) return v.status();
  if (*v > 1e6)
    return absl::InvalidArgumentError(
        absl::StrCat("cpu quantity \"", std::string(q), "\" is too large"));
  // "9m" is 9 * 1e-3 * 1000 = 9.000000000000002 in doubles: round what is a whole number of
  // millicores but for float error, and round only a real fraction up.
  const double millis = *v * 1000;
  const double whole = std::round(millis);
  if (std::fabs(millis - whole) < 1e-6) return static_cast<int64_t>(whole);
  return static_cast<int64_t>(std::ceil(millis));
}

}  // namespace faasd::provider
