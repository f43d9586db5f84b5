// LogReader: the backlog of a function's rotated log (filtered, last N), then what follows.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "logs/logs.h"
#include "logs/record.h"

namespace faasd::logs {
namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
constexpr size_t kReadChunk = 64 << 10;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Complete lines of one open file, read forward with pread from a position.
class LineScanner {
 public:
  explicit LineScanner(int fd, uint64_t pos = 0) : fd_(fd), file_pos_(pos) {}

  // The next complete line (without '\n') ending before `limit`; valid until the next call.
  // False when there is none (yet): the position stays at the start of the incomplete rest.
  bool Next(uint64_t limit, absl::string_view* line) {
    size_t from = off_;
    for (;;) {
      const size_t nl = buf_.find('\n', from);
      if (nl != std::string::npos) {
        *line = absl::string_view(buf_.data() + off_, nl - off_);
        off_ = nl + 1;
        return true;
      }
      if (off_ > 0) {
        buf_.erase(0, off_);
        file_pos_ += off_;
        off_ = 0;
      }
      from = buf_.size();
      const uint64_t have = file_pos_ + buf_.size();
      if (have >= limit) return false;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadChunk, limit - have));
      buf_.resize(from + want);
      ssize_t n;
      do {
        n = ::pread(fd_, &buf_[from], want, static_cast<off_t>(have));
      } while (n < 0 && errno == EINTR);
      buf_.resize(from + static_cast<size_t>(n > 0 ? n : 0));
      if (n <= 0) return false;
    }
  }

  uint64_t pos() const { return file_pos_ + off_; }

 private:
  int fd_;
  uint64_t file_pos_;  // file offset of buf_[0]
  std::string buf_;
  size_t off_ = 0;  // unread bytes are buf_[off_..]
};

}  // namespace

struct LogReader::Segment {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t end = kNoLimit;  // the backlog ends here (the size at the snapshot)
  LineScanner lines{-1};

  ~Segment() {
    if (fd >= 0) ::close(fd);
  }
  static std::unique_ptr<Segment> Open(const std::string& path, bool* missing) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    *missing = fd < 0 && errno == ENOENT;
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    auto s = std::make_unique<Segment>();
    s->fd = fd;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->end = static_cast<uint64_t>(st.st_size);
    s->lines = LineScanner(fd);
    return s;
  }
};

namespace {

// Shared flock on <log>.lock while the set of files is opened: no rotation runs meanwhile.
class SharedLock {
 public:
  explicit SharedLock(const std::string& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_SH) != 0 && errno == EINTR) {
      }
    }
  }
  ~SharedLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

 private:
  int fd_;
};

}  // namespace

LogReader::LogReader(std::string dir, ReadOptions o) : dir_(std::move(dir)), options_(o) {
  if (options_.since) since_text_ = internal::FormatTimestamp(*options_.since);
}

LogReader::~LogReader() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

absl::StatusOr<std::unique_ptr<LogReader>> LogReader::Open(const std::string& dir, ReadOptions o) {
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  std::unique_ptr<LogReader> r(new LogReader(dir, o));
  if (o.follow) {
    // Watch before the snapshot, so nothing written in between goes unnoticed.
    r->inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->inotify_fd_ >= 0 &&
        ::inotify_add_watch(r->inotify_fd_, dir.c_str(),
                            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
      ::close(r->inotify_fd_);
      r->inotify_fd_ = -1;
    }
  }
  if (absl::Status s = r->Snapshot(); !s.ok()) return s;
  if (o.tail > 0) {
    const uint64_t n = r->CountMatching();
    r->skip_ = n > static_cast<uint64_t>(o.tail) ? n - static_cast<uint64_t>(o.tail) : 0;
  }
  return r;
}

absl::Status LogReader::Snapshot() {
  const std::string path = absl::StrCat(dir_, "/", kLogFileName);
  SharedLock lock(path + ".lock");
  std::vector<std::unique_ptr<Segment>> newest_first;
  bool missing = false;
  for (int n = 0; n <= kMaxFiles; ++n) {
    const std::string p = n == 0 ? path : absl::StrCat(path, ".", n);
    std::unique_ptr<Segment> s = Segment::Open(p, &missing);
    if (s == nullptr) {
      if (missing && n > 0) break;  // path.1 .. path.k are contiguous
      if (!missing) return Errno("open", p);
      continue;  // no current file (yet) while older ones exist
    }
    newest_first.push_back(std::move(s));
  }
  segments_.assign(std::make_move_iterator(newest_first.rbegin()),
                   std::make_move_iterator(newest_first.rend()));
  return absl::OkStatus();
}

bool LogReader::Matches(absl::string_view timestamp, absl::string_view instance) const {
  if (!options_.instance.empty() && instance != options_.instance) return false;
  if (!since_text_.empty() && timestamp < since_text_) return false;
  return true;
}

uint64_t LogReader::CountMatching() const {
  uint64_t n = 0;
  internal::RecordHead head;
  for (const auto& seg : segments_) {
    LineScanner scan(seg->fd);
    absl::string_view line;
    while (scan.Next(seg->end, &line)) {
      if (internal::ParseRecordHead(line, &head) && Matches(head.timestamp, head.instance)) ++n;
    }
  }
  return n;
}

bool LogReader::done() const { return backlog_done_ && !options_.follow; }

void LogReader::DrainWakeups() {
  if (inotify_fd_ < 0) return;
  char buf[4096];
  while (::read(inotify_fd_, buf, sizeof buf) > 0) {
  }
}

absl::Status LogReader::FollowRotation() {
  const std::string path = absl::StrCat(dir_, "/", kLogFileName);
  const Segment* live = segments_.empty() ? nullptr : segments_.back().get();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::OkStatus();  // nothing new to follow
  if (live != nullptr && st.st_ino == live->ino && st.st_dev == live->dev) {
    return absl::OkStatus();  // not rotated
  }
  SharedLock lock(path + ".lock");
  // Files newer than the live one: those below it in number, then the current file. When the
  // live file is gone altogether (rotated out), every file is newer.
  std::vector<std::string> names;  // newest first
  for (int n = 0; n <= kMaxFiles; ++n) {
    const std::string p = n == 0 ? path : absl::StrCat(path, ".", n);
    if (::stat(p.c_str(), &st) != 0) {
      if (n > 0) break;
      continue;
    }
    if (live != nullptr && st.st_ino == live->ino && st.st_dev == live->dev) {
      break;
    }
    names.push_back(p);
  }
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    bool missing = false;
    std::unique_ptr<Segment> s = Segment::Open(*it, &missing);
    if (s == nullptr) {
      if (missing) continue;
      return Errno("open", *it);
    }
    s->end = kNoLimit;
    segments_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

absl::Status LogReader::Read(size_t max, std::vector<Record>* out) {
  if (done()) return absl::OkStatus();
  DrainWakeups();
  const size_t start = out->size();
  internal::RecordHead head;
  Record rec;
  while (out->size() - start < max) {
    if (segments_.empty()) {
      backlog_done_ = true;
      if (!options_.follow) break;
      if (absl::Status s = FollowRotation(); !s.ok()) return s;
      if (segments_.empty()) break;  // no log file yet
      continue;
    }
    Segment& seg = *segments_.front();
    absl::string_view line;
    if (seg.lines.Next(backlog_done_ ? kNoLimit : seg.end, &line)) {
      if (!internal::ParseRecordHead(line, &head) || !Matches(head.timestamp, head.instance)) {
        continue;
      }
      if (!backlog_done_ && skip_ > 0) {
        --skip_;
        continue;
      }
      if (internal::ParseRecord(line, head, &rec)) out->push_back(std::move(rec));
      continue;
    }
    if (segments_.size() > 1) {
      // A rotated file is complete; an unterminated rest is a torn write. Its descriptor can go.
      segments_.erase(segments_.begin());
      continue;
    }
    if (!backlog_done_) {
      backlog_done_ = true;
      if (!options_.follow) break;
      continue;
    }
    const size_t before = segments_.size();
    if (absl::Status s = FollowRotation(); !s.ok()) return s;
    if (segments_.size() == before) break;  // at the end of the live file: nothing new yet
  }
  return absl::OkStatus();
}

}  // namespace faasd::logs
