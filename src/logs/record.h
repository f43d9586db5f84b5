// The on-disk record format (see logs.h). Private to src/logs/.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "logs/logs.h"

namespace faasd::logs::internal {

inline constexpr size_t kTimestampSize = 30;  // 2024-11-28T22:40:00.123456789Z

// UTC, nanoseconds, always kTimestampSize characters (for years 0-9999).
std::string FormatTimestamp(absl::Time t);
bool ParseTimestamp(absl::string_view s, absl::Time* t);

// Appends `raw` as a JSON string literal (with quotes). Each byte that is not part of valid
// UTF-8 becomes U+FFFD (as Go's encoding/json does); control characters are escaped.
void AppendJsonString(absl::string_view raw, std::string* out);
// Parses the JSON string literal starting at s[*pos] (the opening quote), advancing *pos past
// it. Decodes into *out unless out is null. False when it is not a complete literal.
bool ParseJsonString(absl::string_view s, size_t* pos, std::string* out);

// Appends one record line, newline included.
void AppendRecord(absl::Time t, absl::string_view instance, absl::string_view stream,
                  absl::string_view text, std::string* out);

// The parts of a record line a filter needs, and the rest on demand.
struct RecordHead {
  absl::string_view timestamp;  // into the line
  std::string instance;
  size_t rest = 0;  // offset of ,"stream": in the line
};
// False when the line (without its newline) is not a record.
bool ParseRecordHead(absl::string_view line, RecordHead* head);
bool ParseRecord(absl::string_view line, const RecordHead& head, Record* out);

// The longest prefix of s not longer than max that does not end inside a UTF-8 sequence (when
// such a cut exists within 3 bytes of max).
size_t Utf8Cut(absl::string_view s, size_t max);

}  // namespace faasd::logs::internal
