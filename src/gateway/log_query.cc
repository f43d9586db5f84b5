#include "gateway/log_query.h"

#include <cstdint>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "provider/types.h"

namespace faasd::gateway {
namespace {

constexpr char kBadRequest[] = "could not parse the log request";

// Go's url.Values lookup in faas-provider: the last value of a repeated parameter.
std::string LastParam(const httplib::Params& params, const char* key) {
  auto range = params.equal_range(key);
  if (range.first == range.second) return "";
  return std::prev(range.second)->second;  // a multimap keeps equal keys in insertion order
}

// strconv.Atoi: an optional sign and decimal digits, within int64.
bool ParseGoInt(absl::string_view s, int64_t* out) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  uint64_t v = 0;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

// strconv.ParseBool, with its error read as false (as faas-provider does).
bool ParseGoBool(absl::string_view s) {
  return s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True";
}

int DaysIn(int64_t year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// time.Parse(time.RFC3339, s): 2006-01-02T15:04:05[.fraction](Z|±hh:mm), fields in range.
bool ParseRfc3339(absl::string_view s, absl::Time* out) {
  bool ok = true;
  auto num = [&](size_t pos, size_t len, int64_t min, int64_t max) {
    int64_t v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') {
        ok = false;
        return min;
      }
      v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) ok = false;
    return ok ? v : min;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
    return false;
  }
  const int64_t year = num(0, 4, 0, 9999);
  const int64_t month = num(5, 2, 1, 12);
  const int64_t day = num(8, 2, 1, ok ? DaysIn(year, static_cast<int>(month)) : 31);
  const int64_t hour = num(11, 2, 0, 23), minute = num(14, 2, 0, 59), second = num(17, 2, 0, 59);
  if (!ok) return false;
  s.remove_prefix(19);
  int64_t nanos = 0;
  if (s.size() >= 2 && s[0] == '.' && s[1] >= '0' && s[1] <= '9') {
    size_t n = 1;
    int64_t scale = 100000000;
    for (; n < s.size() && s[n] >= '0' && s[n] <= '9'; ++n) {
      nanos += (s[n] - '0') * scale;  // digits past nanoseconds are dropped, as Go does
      scale /= 10;
    }
    s.remove_prefix(n);
  }
  int64_t offset = 0;
  if (s != "Z") {
    if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
    const int64_t oh = num(1, 2, 0, 23), om = num(4, 2, 0, 59);
    if (!ok) return false;
    offset = (oh * 60 + om) * 60 * (s[0] == '-' ? -1 : 1);
  }
  *out = absl::FromCivil(absl::CivilSecond(year, static_cast<int>(month), static_cast<int>(day),
                                           static_cast<int>(hour), static_cast<int>(minute),
                                           static_cast<int>(second)),
                         absl::UTCTimeZone()) +
         absl::Nanoseconds(nanos) - absl::Seconds(offset);
  return true;
}

absl::Status Unparsable(absl::string_view why) {
  return WithHttpStatus(absl::InvalidArgumentError(absl::StrCat(kBadRequest, ": ", why)), 422);
}

}  // namespace

absl::StatusOr<provider::LogRequest> ParseLogQuery(const httplib::Params& params) {
  provider::LogRequest q;
  q.name = LastParam(params, "name");
  if (absl::Status s = CheckName("function name", q.name); !s.ok()) return s;
  q.ns = LastParam(params, "namespace");
  if (q.ns.empty()) q.ns = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", q.ns); !s.ok()) return s;
  q.instance = LastParam(params, "instance");
  if (const std::string tail = LastParam(params, "tail");
      !tail.empty() && !ParseGoInt(tail, &q.tail)) {
    return Unparsable(absl::StrCat("tail \"", tail, "\" is not an integer"));
  }
  if (const std::string since = LastParam(params, "since"); !since.empty()) {
    absl::Time t;
    if (!ParseRfc3339(since, &t)) return Unparsable(absl::StrCat("since \"", since, "\" is not RFC 3339"));
    q.since = t;
  }
  q.follow = ParseGoBool(LastParam(params, "follow"));
  return q;
}

}  // namespace faasd::gateway
