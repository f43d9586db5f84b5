// JournalSender: faasd-logger's copy of each line to journald, over journald's native protocol
// (systemd's "Native Journal Protocol": one datagram per entry of KEY=VALUE lines, a value
// holding a newline as KEY\n<64-bit little-endian length><bytes>\n, and an entry too big for a
// datagram passed as a sealed memfd). Private to src/logs/.
//
// Why not libsystemd's sd_journal_sendv: Debian 12 ships libsystemd only as a shared library
// (no libsystemd.a), and faasd-logger is a static binary on purpose (see meson.build here);
// sd_journal_sendv also blocks when journald's queue is full, which would stall the function.
//
// The contract: the function's output never waits for journald. The socket is non-blocking; an
// entry journald's queue has no room for waits in a bounded backlog (sent when fd() polls
// writable) and, past that bound, is dropped and counted; when journald takes entries again it
// gets one entry saying how many were dropped. A socket that is missing or refuses is probed
// again after a while (the probe is a time comparison per line, nothing more); a journald that
// restarts is reconnected on the first refused send. Not thread-safe: one per faasd-logger.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "logs/logs.h"

namespace faasd::logs {

inline constexpr char kJournalSocket[] = "/run/systemd/journal/socket";

class JournalSender final : public LineSink {
 public:
  struct Options {
    std::string socket_path = kJournalSocket;
    absl::Duration probe_interval = absl::Seconds(30);  // a missing socket is tried again after
    size_t max_backlog_bytes = 256 << 10;               // entries waiting for room in journald
  };
  // `fields` (KEY, value) go with every line besides MESSAGE and PRIORITY (6 stdout, 3 stderr).
  // Keys must be journal field names (A-Z, 0-9, _; not starting with _). Connects lazily.
  JournalSender(std::vector<std::pair<std::string, std::string>> fields, Options o);
  ~JournalSender() override;
  JournalSender(const JournalSender&) = delete;
  JournalSender& operator=(const JournalSender&) = delete;

  void Line(Stream s, absl::string_view text, absl::Time now) override;

  // The socket while connected, else -1; poll it for POLLOUT when backlogged().
  int fd() const { return fd_; }
  // Entries, or the report of dropped ones, wait for room in journald's queue.
  bool backlogged() const { return fd_ >= 0 && (!backlog_.empty() || dropped_ > 0); }
  // Sends what the backlog holds, then the report, as far as journald takes them.
  void SendBacklog(absl::Time now);

  uint64_t sent() const { return sent_; }
  uint64_t dropped() const { return dropped_total_; }

 private:
  bool Connect(absl::Time now);
  void Disconnect(absl::Time now);
  // One datagram made of `parts`: 0 when journald took it, else the errno.
  int Send(const absl::string_view* parts, size_t n);
  int SendAsMemfd(const absl::string_view* parts, size_t n);
  // Sends or backlogs one entry; false when it had to be dropped.
  bool Deliver(const absl::string_view* parts, size_t n, absl::Time now);
  void ReportDrops();

  const Options options_;
  std::string fields_;  // `fields` in the protocol's form
  int fd_ = -1;
  absl::Time next_probe_ = absl::InfinitePast();
  std::deque<std::string> backlog_;  // whole datagrams, oldest first
  size_t backlog_bytes_ = 0;
  uint64_t sent_ = 0;
  uint64_t dropped_ = 0;  // since the last report
  uint64_t dropped_total_ = 0;
};

}  // namespace faasd::logs
