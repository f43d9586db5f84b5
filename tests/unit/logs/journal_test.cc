// JournalSender against a datagram socket the test binds itself: the native protocol's entries
// (plain and binary-safe fields, memfd for big ones), never blocking when the reader stalls
// (backlog, then drops and one report), and finding a socket that appears or is bound again.
// The real journald is exercised by tests/integration/test_journal.py.
#include "logs/journal.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "catch.hpp"

namespace faasd::logs {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// A bound datagram socket standing where journald's would.
struct Journald {
  std::string dir, path;
  int fd = -1;
  Journald() {
    char tmpl[] = "/tmp/journal-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/socket";
    Bind();
  }
  ~Journald() {
    Close();
    ::rmdir(dir.c_str());
  }
  void Bind() {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0);
  }
  void Close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    ::unlink(path.c_str());
  }
  // The next entry's bytes (read from the memfd when one came), or "" when none is queued.
  std::string Receive(bool* via_memfd = nullptr) {
    std::string buf(1 << 20, '\0');
    struct iovec iov = {buf.data(), buf.size()};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0) return "";
    buf.resize(static_cast<size_t>(n));
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    if (via_memfd != nullptr) *via_memfd = c != nullptr;
    if (c == nullptr) return buf;
    REQUIRE(c->cmsg_type == SCM_RIGHTS);
    int mfd;
    std::memcpy(&mfd, CMSG_DATA(c), sizeof mfd);
    CHECK(::fcntl(mfd, F_GET_SEALS) ==
          (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));  // journald insists
    struct stat st;
    REQUIRE(::fstat(mfd, &st) == 0);
    std::string data(static_cast<size_t>(st.st_size), '\0');
    REQUIRE(::pread(mfd, data.data(), data.size(), 0) == st.st_size);
    ::close(mfd);
    return data;
  }
};

// The fields of one entry, as journald parses them.
std::map<std::string, std::string> Fields(const std::string& entry) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < entry.size()) {
    const size_t nl = entry.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    const size_t eq = entry.find('=', pos);
    if (eq != std::string::npos && eq < nl) {
      out[entry.substr(pos, eq - pos)] = entry.substr(eq + 1, nl - eq - 1);
      pos = nl + 1;
      continue;
    }
    const std::string key = entry.substr(pos, nl - pos);
    REQUIRE(nl + 9 <= entry.size());
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(entry[nl + 1 + i]);
    REQUIRE(nl + 9 + len < entry.size());
    out[key] = entry.substr(nl + 9, len);
    CHECK(entry[nl + 9 + len] == '\n');
    pos = nl + 10 + len;
  }
  return out;
}

JournalSender::Options At(const Journald& j) {
  JournalSender::Options o;
  o.socket_path = j.path;
  return o;
}

TEST_CASE("each line is one entry with MESSAGE, PRIORITY and the identifying fields") {
  Journald j;
  JournalSender sender({{"SYSLOG_IDENTIFIER", "ns:fn"}, {"CONTAINER_ID", "fn-1a2b"}}, At(j));
  sender.Line(Stream::kStdout, "hello", kT0);
  sender.Line(Stream::kStderr, "oops", kT0);
  sender.Line(Stream::kStdout, "two\nlines", kT0);  // never from LogWriter, but binary-safe
  std::map<std::string, std::string> f = Fields(j.Receive());
  CHECK(f["MESSAGE"] == "hello");
  CHECK(f["PRIORITY"] == "6");
  CHECK(f["SYSLOG_IDENTIFIER"] == "ns:fn");
  CHECK(f["CONTAINER_ID"] == "fn-1a2b");
  f = Fields(j.Receive());
  CHECK(f["MESSAGE"] == "oops");
  CHECK(f["PRIORITY"] == "3");
  const std::string raw = j.Receive();
  CHECK(absl::StrContains(raw, "MESSAGE\n"));
  CHECK(Fields(raw)["MESSAGE"] == "two\nlines");
  CHECK(j.Receive().empty());
  CHECK(sender.sent() == 3);
}

TEST_CASE("an entry bigger than a datagram goes as a sealed memfd") {
  Journald j;
  JournalSender sender({{"SYSLOG_IDENTIFIER", "ns:fn"}}, At(j));
  const std::string big(1 << 20, 'x');  // past the default send buffer (208 KiB)
  sender.Line(Stream::kStdout, big, kT0);
  bool memfd = false;
  std::map<std::string, std::string> f = Fields(j.Receive(&memfd));
  CHECK(memfd);
  CHECK(f["MESSAGE"] == big);
  CHECK(f["SYSLOG_IDENTIFIER"] == "ns:fn");
}

TEST_CASE("a stalled journald never blocks: a bounded backlog, then drops, then one report") {
  Journald j;
  JournalSender::Options o = At(j);
  o.max_backlog_bytes = 4 << 10;
  JournalSender sender({{"SYSLOG_IDENTIFIER", "ns:fn"}}, o);
  const absl::Time start = absl::Now();
  for (int i = 0; i < 2000; ++i) sender.Line(Stream::kStdout, std::to_string(i), kT0);
  CHECK(absl::Now() - start < absl::Seconds(1));
  REQUIRE(sender.backlogged());
  REQUIRE(sender.dropped() > 0);
  REQUIRE(sender.fd() >= 0);
  // The reader catches up: the queue, then the backlog in order, then the report.
  std::vector<std::string> got;
  for (int rounds = 0; rounds < 100 && (sender.backlogged() || got.empty()); ++rounds) {
    for (std::string e = j.Receive(); !e.empty(); e = j.Receive()) got.push_back(e);
    sender.SendBacklog(kT0);
  }
  for (std::string e = j.Receive(); !e.empty(); e = j.Receive()) got.push_back(e);
  REQUIRE(!sender.backlogged());
  REQUIRE(got.size() == sender.sent() + 1);
  int last = -1;
  for (size_t i = 0; i + 1 < got.size(); ++i) {
    const int n = std::atoi(Fields(got[i])["MESSAGE"].c_str());
    CHECK(n > last);
    last = n;
  }
  std::map<std::string, std::string> report = Fields(got.back());
  CHECK(report["PRIORITY"] == "4");
  CHECK(
      absl::StrContains(report["MESSAGE"], std::to_string(sender.dropped()) + " lines not copied"));
  CHECK(sender.sent() + sender.dropped() == 2000);
}

TEST_CASE("a missing socket is probed again after the interval; a rebound one at once") {
  Journald j;
  j.Close();
  JournalSender::Options o = At(j);
  o.probe_interval = absl::Seconds(30);
  JournalSender sender({{"SYSLOG_IDENTIFIER", "ns:fn"}}, o);
  sender.Line(Stream::kStdout, "nobody there", kT0);
  CHECK(sender.fd() < 0);
  j.Bind();
  sender.Line(Stream::kStdout, "too soon", kT0 + absl::Seconds(10));
  CHECK(sender.fd() < 0);
  sender.Line(Stream::kStdout, "found", kT0 + absl::Seconds(30));
  CHECK(Fields(j.Receive())["MESSAGE"] == "found");
  // journald restarts: the old socket refuses, the new one at the same path takes the line.
  j.Close();
  j.Bind();
  sender.Line(Stream::kStdout, "after restart", kT0 + absl::Seconds(31));
  CHECK(Fields(j.Receive())["MESSAGE"] == "after restart");
  CHECK(sender.dropped() == 0);
}

TEST_CASE("LogWriter hands each line it records to its sink, cut lines too") {
  struct Lines final : LineSink {
    std::vector<std::pair<Stream, std::string>> got;
    void Line(Stream s, absl::string_view text, absl::Time) override {
      got.emplace_back(s, std::string(text));
    }
  } lines;
  char tmpl[] = "/tmp/journal-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  {
    // 16 KiB files: lines are cut at 2 KiB.
    LogWriter w(dir + "/ns/fn", {16 << 10, 2}, "fn-1", &lines);
    REQUIRE(w.Consume(Stream::kStdout, "a\nb", kT0).ok());
    REQUIRE(w.Consume(Stream::kStderr, "c\n" + std::string(3000, 'x') + "\n", kT0).ok());
    REQUIRE(w.Flush(Stream::kStdout, kT0).ok());
  }
  std::system(("rm -rf '" + dir + "'").c_str());
  REQUIRE(lines.got.size() == 5);
  CHECK(lines.got[0] == std::make_pair(Stream::kStdout, std::string("a")));
  CHECK(lines.got[1] == std::make_pair(Stream::kStderr, std::string("c")));
  CHECK(lines.got[2].second.size() == 2048);
  CHECK(lines.got[3].second.size() == 3000 - 2048);
  CHECK(lines.got[4] == std::make_pair(Stream::kStdout, std::string("b")));
}

}  // namespace
}  // namespace faasd::logs
