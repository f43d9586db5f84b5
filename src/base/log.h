// Logging for the daemon: one line per event on stderr, which systemd sends to the journal, or
// to a writer set at start-up (`faasd up --log-file`: a rotated file). Lines carry a level and
// the UTC time, so `journalctl -u faasd` and a plain terminal both read well. Thread-safe: each
// call hands one whole line to a single write(2) or to the writer.
#pragma once

#include <functional>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace faasd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);
// Sends every line (newline included) to `write` instead of stderr; a line it fails to take
// (returns false) goes to stderr. `write` must be thread-safe and outlive all logging. Set it
// before other threads log; nullptr restores stderr.
void SetLogWriter(std::function<bool(std::string_view line)> write);
// Note: Debian's Abseil has its own absl::string_view; pass std::string, const char* or
// absl::string_view to the Log* helpers, not std::string_view.

template <typename... Args>
void LogInfo(const Args&... args) {
  if (LogEnabled(LogLevel::kInfo)) LogLine(LogLevel::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  if (LogEnabled(LogLevel::kWarning)) LogLine(LogLevel::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  if (LogEnabled(LogLevel::kError)) LogLine(LogLevel::kError, absl::StrCat(args...));
}
template <typename... Args>
void LogDebug(const Args&... args) {
  if (LogEnabled(LogLevel::kDebug)) LogLine(LogLevel::kDebug, absl::StrCat(args...));
}

}  // namespace faasd
