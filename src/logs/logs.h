// Function logs on disk: what faasd-logger writes and what /system/logs reads.
//
// Each function has a directory <state-dir>/logs/<namespace>/<name>/ (mode 0700) holding one
// rotated log: log.ndjson (the current file), log.ndjson.1 (the newest older one) ...
// log.ndjson.<files-1>, each file mode 0600 and at most max_bytes, so a function's log never
// passes max_bytes × files. A line is one record:
//   {"timestamp":"2024-11-28T22:40:00.123456789Z","instance":"<container id>",
//    "stream":"stdout","text":"..."}
// with the timestamp always 30 characters (UTC, nanoseconds), so text order is time order.
//
// Several writers share one directory: every replica of a function (each its own container,
// each with its own faasd-logger) and, during a blue-green update, the old and the new
// container. RotatingFile makes that safe: each append is one write(2) of whole lines to an
// O_APPEND descriptor, done under an exclusive flock on log.ndjson.lock together with the size
// check and any rotation, and a writer whose file another writer rotated away reopens the path.
// Readers take the same lock (shared) only to open a consistent set of files.
//
// Nothing here logs or includes the provider: faasd-logger (a static binary the containerd shim
// runs per task) links this library too.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace faasd::logs {

// Bounds of one rotated log: the current file plus files-1 older ones, each at most max_bytes.
struct RotationOptions {
  uint64_t max_bytes = 10 << 20;
  int files = 3;
};
inline constexpr uint64_t kMinFileBytes = 16 << 10;
inline constexpr int kMaxFiles = 100;
// InvalidArgument naming the bound when max_bytes < kMinFileBytes or files is not 1..kMaxFiles.
absl::Status CheckRotationOptions(const RotationOptions& o);

inline constexpr char kLogFileName[] = "log.ndjson";

// <state_dir>/logs/<ns>/<name>; names are DNS labels (checked by the gateway).
std::string FunctionLogDir(absl::string_view state_dir, absl::string_view ns,
                           absl::string_view name);

// Whether faasd-logger also copies each line to journald: kAuto when its native socket
// (/run/systemd/journal/socket) accepts a connection, probed again now and then; kOff never.
enum class JournalMode { kAuto, kOff };
// "auto" or "off"; InvalidArgument naming the value otherwise.
absl::StatusOr<JournalMode> ParseJournalMode(absl::string_view s);

// What faasd-logger is told about one task: where its function's log is, and the names the
// journald copy carries (SYSLOG_IDENTIFIER=<ns>:<name>, as faasd's own logger does).
struct LoggerQuery {
  std::string dir;   // FunctionLogDir(...)
  std::string ns;    // the function's namespace
  std::string name;  // the function's name
  RotationOptions rotation;
  JournalMode journal = JournalMode::kAuto;
};

// The containerd stdio URI that makes the shim run faasd-logger for a task:
//   binary://<logger_path>?dir=<dir>&max-bytes=<n>&files=<n>&ns=<ns>&fn=<name>&journal=auto|off
// (containerd passes the query to the logger as argv pairs, in no particular order).
std::string LoggerUri(absl::string_view logger_path, const LoggerQuery& q);

// LoggerUri for a task whose output goes to FunctionLogDir(state_dir, ns, name) (a function's
// replica, or a service in namespace openfaas); "" (output discarded) when `logger_path` is "".
std::string TaskLogUri(absl::string_view logger_path, absl::string_view state_dir,
                       absl::string_view ns, absl::string_view name,
                       const RotationOptions& rotation, JournalMode journal);

// Creates `dir` and its missing parents with `mode`.
absl::Status MakeDirs(const std::string& dir, mode_t mode);

// An append-only file at `path`, rotated path -> path.1 -> ... -> path.<files-1> (then removed)
// before an append would take it past max_bytes. Any number of processes and threads may append
// to the same path (see the top of this file). Thread-safe.
class RotatingFile {
 public:
  // Opens (creating, mode 0600) path and path.lock; the directory must exist.
  static absl::StatusOr<std::unique_ptr<RotatingFile>> Open(std::string path, RotationOptions o);
  ~RotatingFile();
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  // Appends whole lines. Data longer than max_bytes is written in pieces cut at newlines; a
  // single line longer than max_bytes is cut to fit.
  absl::Status Append(absl::string_view lines);

  const std::string& path() const { return path_; }

 private:
  RotatingFile(std::string path, RotationOptions o, int fd, int lock_fd);
  absl::Status Reopen() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Rotate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WritePiece(absl::string_view piece, uint64_t* size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const RotationOptions options_;
  absl::Mutex mu_;  // flock excludes other processes, not other threads on the same descriptor
  int fd_ ABSL_GUARDED_BY(mu_);
  const int lock_fd_;
};

enum class Stream { kStdout, kStderr };

// Also gets each line LogWriter records, as it records it (faasd-logger's journald copy). Line
// must not block: it runs between reads of the function's pipes.
class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void Line(Stream s, absl::string_view text, absl::Time now) = 0;
};

// Turns one task's stdout and stderr bytes into records in its function's log: one record per
// line (without the newline), a line running past max_line_bytes cut there (at a UTF-8
// boundary), each stamped with the time its bytes were read. Invalid UTF-8 is stored as U+FFFD.
// The log is opened lazily and again after a failure (a missing directory is created), so a
// logger never stops draining its pipes. Each line also goes to `also` when not null (borrowed),
// whether or not the file takes it. Not thread-safe: one per faasd-logger process.
class LogWriter {
 public:
  LogWriter(std::string dir, RotationOptions o, std::string instance, LineSink* also = nullptr);

  // Appends the complete lines in `bytes` (one write for the lot); keeps the rest.
  absl::Status Consume(Stream s, absl::string_view bytes, absl::Time now);
  // End of the stream: appends what is left of its last line.
  absl::Status Flush(Stream s, absl::Time now);

  // max_bytes / 8 capped at 16 KiB: a record, even one escaped to six times its length, fits.
  size_t max_line_bytes() const { return max_line_; }

 private:
  absl::Status Append(const std::string& records);
  void AddRecord(Stream s, absl::string_view text, absl::Time now, std::string* out);

  const std::string dir_;
  const RotationOptions options_;
  const std::string instance_;
  const size_t max_line_;
  LineSink* const also_;
  std::string partial_[2];
  std::unique_ptr<RotatingFile> file_;
  absl::Time retry_after_ = absl::InfinitePast();
};

// One record as read back.
struct Record {
  absl::Time time;
  std::string instance;
  std::string stream;  // "stdout" or "stderr"
  std::string text;
};

struct ReadOptions {
  std::string instance;             // "" = every instance
  std::optional<absl::Time> since;  // only records at or after
  int64_t tail = 0;                 // > 0: only the last `tail` matching records of the backlog
  bool follow = false;              // then records appended after Open, as they come
};

// Reads one function's log. Open() takes a consistent snapshot of the files (the backlog);
// following continues in the current file and across rotations by any writer. Lines that are
// not records (a torn write after a crash) are skipped. Not thread-safe: one per request.
class LogReader {
 public:
  // Creates `dir` (0700) when it does not exist yet, so a follower can watch it.
  static absl::StatusOr<std::unique_ptr<LogReader>> Open(const std::string& dir, ReadOptions o);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Appends up to `max` records to `out`: the backlog first, then (following) records appended
  // since. Appending nothing means nothing more for now; done() says whether more can come.
  absl::Status Read(size_t max, std::vector<Record>* out);
  // The backlog is read and the reader does not follow.
  bool done() const;
  // Following: readable when the directory changed (inotify); Read() drains it. -1 when not
  // following or inotify is unavailable: poll Read() on a timer then.
  int wake_fd() const { return inotify_fd_; }

 private:
  struct Segment;
  LogReader(std::string dir, ReadOptions o);
  absl::Status Snapshot();
  // Matching records in the backlog: tail skips all but the last `tail` of them.
  uint64_t CountMatching() const;
  bool Matches(absl::string_view timestamp, absl::string_view instance) const;
  absl::Status FollowRotation();
  void DrainWakeups();

  const std::string dir_;
  const ReadOptions options_;
  std::string since_text_;                          // options_.since in the records' fixed format
  std::vector<std::unique_ptr<Segment>> segments_;  // oldest first; the last is live
  bool backlog_done_ = false;
  uint64_t skip_ = 0;  // matching backlog records still to skip (tail)
  int inotify_fd_ = -1;
};

}  // namespace faasd::logs
