// LogWriter: a task's stdout/stderr bytes -> records in its function's rotated log.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "logs/logs.h"
#include "logs/record.h"

namespace faasd::logs {
namespace {

constexpr size_t kMaxLineBytes = 16 << 10;
// After a failure to open the log, drop output for this long before trying again.
constexpr absl::Duration kRetryOpen = absl::Seconds(1);

const char* StreamName(Stream s) { return s == Stream::kStdout ? "stdout" : "stderr"; }

}  // namespace

std::string FunctionLogDir(absl::string_view state_dir, absl::string_view ns,
                           absl::string_view name) {
  return absl::StrCat(state_dir, "/logs/", ns, "/", name);
}

absl::StatusOr<JournalMode> ParseJournalMode(absl::string_view s) {
  if (s == "auto") return JournalMode::kAuto;
  if (s == "off") return JournalMode::kOff;
  return absl::InvalidArgumentError(absl::StrCat("journal mode \"", s, "\" is not auto or off"));
}

std::string TaskLogUri(absl::string_view logger_path, absl::string_view state_dir,
                       absl::string_view ns, absl::string_view name,
                       const RotationOptions& rotation, JournalMode journal) {
  if (logger_path.empty()) return "";
  // The logger creates the directory (0700) itself: the shim runs it before the task exists.
  LoggerQuery q;
  q.dir = FunctionLogDir(state_dir, ns, name);
  q.ns = std::string(ns);
  q.name = std::string(name);
  q.rotation = rotation;
  q.journal = journal;
  return LoggerUri(logger_path, q);
}

std::string LoggerUri(absl::string_view logger_path, const LoggerQuery& q) {
  // Go's url.Parse decodes percent escapes in the path and the query values.
  auto escape = [](absl::string_view s, bool keep_slash) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back('%');
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
      }
    }
    return out;
  };
  return absl::StrCat("binary://", escape(logger_path, true), "?dir=", escape(q.dir, false),
                      "&max-bytes=", q.rotation.max_bytes, "&files=", q.rotation.files,
                      "&ns=", escape(q.ns, false), "&fn=", escape(q.name, false),
                      "&journal=", q.journal == JournalMode::kOff ? "off" : "auto");
}

LogWriter::LogWriter(std::string dir, RotationOptions o, std::string instance, LineSink* also)
    : dir_(std::move(dir)),
      options_(o),
      instance_(std::move(instance)),
      max_line_(std::max<size_t>(1, std::min<size_t>(kMaxLineBytes, o.max_bytes / 8))),
      also_(also) {}

void LogWriter::AddRecord(Stream s, absl::string_view text, absl::Time now, std::string* out) {
  if (also_ != nullptr) also_->Line(s, text, now);
  internal::AppendRecord(now, instance_, StreamName(s), text, out);
}

absl::Status LogWriter::Consume(Stream s, absl::string_view bytes, absl::Time now) {
  std::string& partial = partial_[static_cast<int>(s)];
  std::string records;
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    const size_t take = nl == absl::string_view::npos ? bytes.size() : nl;
    // A line running past the limit is cut there; what follows starts the next record.
    const size_t room = max_line_ - partial.size();
    if (take > room) {
      // Look a few bytes past the limit, so the cut can see whether a character straddles it.
      const size_t n = std::min(take, room + 4);
      partial.append(bytes.data(), n);
      const size_t cut = internal::Utf8Cut(partial, max_line_);
      AddRecord(s, absl::string_view(partial).substr(0, cut), now, &records);
      partial.erase(0, cut);
      bytes.remove_prefix(n);
      continue;
    }
    partial.append(bytes.data(), take);
    if (nl == absl::string_view::npos) break;
    AddRecord(s, partial, now, &records);
    partial.clear();
    bytes.remove_prefix(nl + 1);
  }
  return Append(records);
}

absl::Status LogWriter::Flush(Stream s, absl::Time now) {
  std::string& partial = partial_[static_cast<int>(s)];
  if (partial.empty()) return absl::OkStatus();
  std::string records;
  AddRecord(s, partial, now, &records);
  partial.clear();
  return Append(records);
}

absl::Status LogWriter::Append(const std::string& records) {
  if (records.empty()) return absl::OkStatus();
  if (file_ == nullptr) {
    const absl::Time now = absl::Now();
    if (now < retry_after_) return absl::UnavailableError("log not open yet; output dropped");
    absl::Status s = MakeDirs(dir_, 0700);
    absl::StatusOr<std::unique_ptr<RotatingFile>> f =
        s.ok() ? RotatingFile::Open(absl::StrCat(dir_, "/", kLogFileName), options_)
               : absl::StatusOr<std::unique_ptr<RotatingFile>>(s);
    if (!f.ok()) {
      retry_after_ = now + kRetryOpen;
      return f.status();
    }
    file_ = std::move(*f);
  }
  absl::Status s = file_->Append(records);
  if (!s.ok()) file_.reset();  // a removed directory, a full disk: reopen next time
  return s;
}

}  // namespace faasd::logs
