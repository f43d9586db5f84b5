#include "logs/record.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"

namespace faasd::logs::internal {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kReplacement[] = "\xef\xbf\xbd";  // U+FFFD

// Length of the valid UTF-8 sequence at s[i], or 0 when the byte there does not start one.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (c == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool Hex4(absl::string_view s, size_t i, uint32_t* v) {
  if (i + 4 > s.size()) return false;
  *v = 0;
  for (size_t k = i; k < i + 4; ++k) {
    const char c = s[k];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return false;
    *v = (*v << 4) | static_cast<uint32_t>(d);
  }
  return true;
}

bool Digits(absl::string_view s, size_t pos, size_t n, int64_t* v) {
  *v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    *v = *v * 10 + (s[i] - '0');
  }
  return true;
}

bool Literal(absl::string_view line, size_t* pos, absl::string_view lit) {
  if (line.substr(*pos, lit.size()) != lit) return false;
  *pos += lit.size();
  return true;
}

}  // namespace

std::string FormatTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", t, absl::UTCTimeZone());
}

bool ParseTimestamp(absl::string_view s, absl::Time* t) {
  if (s.size() != kTimestampSize || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[29] != 'Z') {
    return false;
  }
  int64_t y, mo, d, h, mi, sec, ns;
  if (!Digits(s, 0, 4, &y) || !Digits(s, 5, 2, &mo) || !Digits(s, 8, 2, &d) ||
      !Digits(s, 11, 2, &h) || !Digits(s, 14, 2, &mi) || !Digits(s, 17, 2, &sec) ||
      !Digits(s, 20, 9, &ns)) {
    return false;
  }
  *t = absl::FromCivil(
           absl::CivilSecond(y, static_cast<int>(mo), static_cast<int>(d), static_cast<int>(h),
                             static_cast<int>(mi), static_cast<int>(sec)),
           absl::UTCTimeZone()) +
       absl::Nanoseconds(ns);
  return true;
}

void AppendJsonString(absl::string_view raw, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < raw.size()) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(raw, i);
      if (n == 0) {
        out->append(kReplacement);
        ++i;
      } else {
        out->append(raw.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

bool ParseJsonString(absl::string_view s, size_t* pos, std::string* out) {
  size_t i = *pos;
  if (i >= s.size() || s[i] != '"') return false;
  ++i;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      *pos = i + 1;
      return true;
    }
    if (static_cast<unsigned char>(c) < 0x20) return false;
    if (c != '\\') {
      // Copy the run up to the next quote or backslash in one go.
      size_t j = i;
      while (j < s.size() && s[j] != '"' && s[j] != '\\' &&
             static_cast<unsigned char>(s[j]) >= 0x20) {
        ++j;
      }
      if (out != nullptr) out->append(s.data() + i, j - i);
      i = j;
      continue;
    }
    if (++i >= s.size()) return false;
    char decoded = 0;
    switch (s[i]) {
      case '"':
      case '\\':
      case '/':
        decoded = s[i];
        break;
      case 'b':
        decoded = '\b';
        break;
      case 'f':
        decoded = '\f';
        break;
      case 'n':
        decoded = '\n';
        break;
      case 'r':
        decoded = '\r';
        break;
      case 't':
        decoded = '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!Hex4(s, i + 1, &cp)) return false;
        i += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (i + 1 < s.size() && s[i] == '\\' && s[i + 1] == 'u' && Hex4(s, i + 2, &lo) &&
              lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        if (out != nullptr) AppendUtf8(cp, out);
        continue;
      }
      default:
        return false;
    }
    if (out != nullptr) out->push_back(decoded);
    ++i;
  }
  return false;
}

void AppendRecord(absl::Time t, absl::string_view instance, absl::string_view stream,
                  absl::string_view text, std::string* out) {
  out->append("{\"timestamp\":\"");
  out->append(FormatTimestamp(t));
  out->append("\",\"instance\":");
  AppendJsonString(instance, out);
  out->append(",\"stream\":");
  AppendJsonString(stream, out);
  out->append(",\"text\":");
  AppendJsonString(text, out);
  out->append("}\n");
}

bool ParseRecordHead(absl::string_view line, RecordHead* head) {
  size_t pos = 0;
  if (!Literal(line, &pos, "{\"timestamp\":\"")) return false;
  if (line.size() < pos + kTimestampSize + 1 || line[pos + kTimestampSize] != '"') return false;
  head->timestamp = line.substr(pos, kTimestampSize);
  pos += kTimestampSize + 1;
  head->instance.clear();
  if (!Literal(line, &pos, ",\"instance\":") || !ParseJsonString(line, &pos, &head->instance)) {
    return false;
  }
  head->rest = pos;
  return true;
}

bool ParseRecord(absl::string_view line, const RecordHead& head, Record* out) {
  size_t pos = head.rest;
  out->stream.clear();
  out->text.clear();
  if (!ParseTimestamp(head.timestamp, &out->time)) return false;
  if (!Literal(line, &pos, ",\"stream\":") || !ParseJsonString(line, &pos, &out->stream) ||
      !Literal(line, &pos, ",\"text\":") || !ParseJsonString(line, &pos, &out->text) ||
      !Literal(line, &pos, "}") || pos != line.size()) {
    return false;
  }
  out->instance = head.instance;
  return true;
}

size_t Utf8Cut(absl::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  // s[max] is the first byte left out; back off while it continues a sequence.
  for (size_t cut = max; cut + 3 >= max && cut > 0; --cut) {
    if ((static_cast<unsigned char>(s[cut]) & 0xC0) != 0x80) return cut;
  }
  return max;
}

}  // namespace faasd::logs::internal
