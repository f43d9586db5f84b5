// Function logs on disk: the record format, the writer (lines, partial lines, cuts), rotation
// bounds with concurrent writers, the reader's filters and following across rotations.
#include "logs/logs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "catch.hpp"
#include "logs/record.h"

namespace faasd::logs {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/logs-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Every file of the log at `dir`: log.ndjson, log.ndjson.1, ...
std::vector<std::string> LogFiles(const std::string& dir) {
  std::vector<std::string> out;
  const std::string base = dir + "/" + kLogFileName;
  if (::access(base.c_str(), F_OK) == 0) out.push_back(base);
  for (int n = 1; n < 1000; ++n) {
    const std::string p = absl::StrCat(base, ".", n);
    if (::access(p.c_str(), F_OK) != 0) break;
    out.push_back(p);
  }
  return out;
}

std::vector<Record> ReadAll(const std::string& dir, ReadOptions o = {}) {
  absl::StatusOr<std::unique_ptr<LogReader>> r = LogReader::Open(dir, o);
  REQUIRE(r.ok());
  std::vector<Record> out;
  while (!(*r)->done()) {
    const size_t before = out.size();
    REQUIRE((*r)->Read(100, &out).ok());
    if (out.size() == before && !(*r)->done()) break;
  }
  return out;
}

std::vector<std::string> Texts(const std::vector<Record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.text);
  return out;
}

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST_CASE("records round-trip, timestamps are fixed width, bad UTF-8 becomes U+FFFD") {
  std::string line;
  const std::string text = "a \"quoted\" \\ tab\t cr\r bell\x07 \xc3\xa9 \xff end";
  internal::AppendRecord(kT0 + absl::Nanoseconds(1500), "fn-1a2b", "stderr", text, &line);
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find("\"timestamp\":\"2023-11-14T22:13:20.000001500Z\"") != std::string::npos);
  line.pop_back();
  internal::RecordHead head;
  REQUIRE(internal::ParseRecordHead(line, &head));
  CHECK(head.instance == "fn-1a2b");
  Record r;
  REQUIRE(internal::ParseRecord(line, head, &r));
  CHECK(r.time == kT0 + absl::Nanoseconds(1500));
  CHECK(r.stream == "stderr");
  CHECK(r.text == "a \"quoted\" \\ tab\t cr\r bell\x07 \xc3\xa9 \xef\xbf\xbd end");

  CHECK(!internal::ParseRecordHead("{\"timestamp\":\"2023", &head));
  CHECK(!internal::ParseRecordHead("garbage", &head));
  std::string torn = line.substr(0, line.size() - 5);
  REQUIRE(internal::ParseRecordHead(torn, &head));
  CHECK(!internal::ParseRecord(torn, head, &r));

  std::string esc;
  internal::AppendJsonString("\xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf ok \xf0\x9f\x98\x80", &esc);
  std::string back;
  size_t pos = 0;
  REQUIRE(internal::ParseJsonString(esc, &pos, &back));
  // Surrogates, code points past U+10FFFF and overlong forms are invalid byte by byte.
  CHECK(back ==
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd ok \xf0\x9f\x98\x80");
  pos = 0;
  back.clear();
  REQUIRE(internal::ParseJsonString(R"("\ud83d\ude00 \u00e9 \ud800x")", &pos, &back));
  CHECK(back == "\xf0\x9f\x98\x80 \xc3\xa9 \xef\xbf\xbdx");
}

TEST_CASE("LoggerUri escapes the path and the directory for Go's url.Parse") {
  LoggerQuery q{"/var/lib/faasd/logs/openfaas-fn/echo", "openfaas-fn", "echo", {1 << 20, 5}};
  CHECK(LoggerUri("/usr/local/sbin/faasd-logger", q) ==
        "binary:///usr/local/sbin/faasd-logger?dir=%2Fvar%2Flib%2Ffaasd%2Flogs%2Fopenfaas-fn%2Fecho"
        "&max-bytes=1048576&files=5&ns=openfaas-fn&fn=echo&journal=auto");
  q.journal = JournalMode::kOff;
  CHECK(absl::EndsWith(LoggerUri("/l", q), "&journal=off"));
  q.dir = "/a&b=c";
  CHECK(
      LoggerUri("/opt/my bin/l?x", q).rfind("binary:///opt/my%20bin/l%3Fx?dir=%2Fa%26b%3Dc&", 0) ==
      0);
  CHECK(*ParseJournalMode("auto") == JournalMode::kAuto);
  CHECK(*ParseJournalMode("off") == JournalMode::kOff);
  CHECK(!ParseJournalMode("on").ok());
  CHECK(FunctionLogDir("/var/lib/faasd", "openfaas-fn", "echo") ==
        "/var/lib/faasd/logs/openfaas-fn/echo");
}

TEST_CASE("rotation options are checked") {
  CHECK(CheckRotationOptions({10 << 20, 3}).ok());
  CHECK(!CheckRotationOptions({1000, 3}).ok());
  CHECK(!CheckRotationOptions({1 << 20, 0}).ok());
  CHECK(!CheckRotationOptions({1 << 20, 101}).ok());
}

TEST_CASE("the writer keeps partial lines until their newline, per stream, and flushes them") {
  TempDir d;
  LogWriter w(d.path + "/ns/fn", {1 << 20, 3}, "fn-1");
  REQUIRE(w.Consume(Stream::kStdout, "hel", kT0).ok());
  REQUIRE(w.Consume(Stream::kStderr, "err one\nerr ", kT0).ok());
  REQUIRE(w.Consume(Stream::kStdout, "lo\n\nworld\r\nand", kT0 + absl::Seconds(1)).ok());
  REQUIRE(w.Flush(Stream::kStdout, kT0 + absl::Seconds(2)).ok());
  REQUIRE(w.Flush(Stream::kStderr, kT0 + absl::Seconds(2)).ok());
  REQUIRE(w.Flush(Stream::kStderr, kT0 + absl::Seconds(3)).ok());  // nothing left: no record
  std::vector<Record> rs = ReadAll(d.path + "/ns/fn");
  REQUIRE(rs.size() == 6);
  CHECK(Texts(rs) == std::vector<std::string>{"err one", "hello", "", "world\r", "and", "err "});
  CHECK(rs[0].stream == "stderr");
  CHECK(rs[1].stream == "stdout");
  CHECK(rs[1].time == kT0 + absl::Seconds(1));
  CHECK(rs[4].time == kT0 + absl::Seconds(2));
  CHECK(rs[0].instance == "fn-1");
  struct stat st;
  REQUIRE(::stat((d.path + "/ns/fn").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((d.path + "/ns/fn/" + kLogFileName).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a line longer than the limit is cut there, never inside a UTF-8 character") {
  TempDir d;
  LogWriter w(d.path, {64 << 10, 3}, "fn-1");
  const size_t max = w.max_line_bytes();
  REQUIRE(max == 8 << 10);
  std::string line(max - 1, 'a');
  line += "\xc3\xa9";  // é straddles the limit
  line += std::string(max, 'b');
  line += "\n";
  // Fed a byte at a time, as a slow pipe might deliver it.
  for (char c : line) REQUIRE(w.Consume(Stream::kStdout, std::string(1, c), kT0).ok());
  std::string exact(max, 'x');
  REQUIRE(w.Consume(Stream::kStdout, exact, kT0).ok());
  REQUIRE(w.Consume(Stream::kStdout, "\n", kT0).ok());  // exactly the limit: one record
  std::vector<Record> rs = ReadAll(d.path);
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].text == std::string(max - 1, 'a'));
  CHECK(rs[1].text == "\xc3\xa9" + std::string(max - 2, 'b'));
  CHECK(rs[2].text == "bb");
  CHECK(rs[3].text == exact);
}

TEST_CASE("rotation never lets the log pass max_bytes x files, and keeps the newest lines") {
  TempDir d;
  const RotationOptions o{16 << 10, 3};
  const std::string path = d.path + "/" + kLogFileName;
  absl::StatusOr<std::unique_ptr<RotatingFile>> f = RotatingFile::Open(path, o);
  REQUIRE(f.ok());
  int last = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string lines;
    for (int k = 0; k < 1 + i % 7; ++k)
      absl::StrAppend(&lines, "line ", ++last, " ", std::string(40, '.'), "\n");
    REQUIRE((*f)->Append(lines).ok());
    uint64_t total = 0;
    for (const std::string& p : LogFiles(d.path)) {
      REQUIRE(FileSize(p) <= o.max_bytes);
      total += FileSize(p);
    }
    REQUIRE(LogFiles(d.path).size() <= 3);
    REQUIRE(total <= o.max_bytes * 3);
  }
  CHECK(LogFiles(d.path).size() == 3);
  const std::string current = Slurp(path);
  CHECK(current.size() > 0);
  CHECK(absl::EndsWith(current, absl::StrCat("line ", last, " ", std::string(40, '.'), "\n")));
  // Older files are full (within one append of the bound): rotation wastes little room.
  CHECK(FileSize(path + ".1") > o.max_bytes - 7 * 60);

  // A single line longer than a whole file is cut to fit.
  REQUIRE((*f)->Append(std::string(40 << 10, 'z') + "\n").ok());
  CHECK(FileSize(path) <= o.max_bytes);
  // Fewer files configured later: the surplus goes at the next rotation.
  absl::StatusOr<std::unique_ptr<RotatingFile>> g = RotatingFile::Open(path, {16 << 10, 1});
  REQUIRE(g.ok());
  REQUIRE((*g)->Append(std::string(10 << 10, 'y') + "\n").ok());
  REQUIRE((*g)->Append(std::string(10 << 10, 'y') + "\n").ok());
  CHECK(LogFiles(d.path).size() == 1);
}

TEST_CASE("concurrent writers (threads and processes) never split, lose or exceed") {
  TempDir d;
  const RotationOptions o{64 << 10, 8};
  constexpr int kThreads = 4, kProcs = 3, kLines = 400;
  // 7 writers x 400 records x ~120 bytes = ~340 KB fits in 512 KB: nothing is rotated out.
  auto write_lines = [&](int writer) {
    LogWriter w(d.path, o, absl::StrCat("w", writer));
    for (int i = 0; i < kLines; ++i) {
      std::string chunk = absl::StrCat("seq ", i, " ", std::string(i % 13, '#'), "\n");
      REQUIRE(w.Consume(i % 2 ? Stream::kStdout : Stream::kStderr, chunk, absl::Now()).ok());
    }
  };
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      LogWriter w(d.path, o, absl::StrCat("p", p));
      bool ok = true;
      for (int i = 0; i < kLines; ++i) {
        ok &= w.Consume(Stream::kStdout,
                        absl::StrCat("seq ", i, " ", std::string(i % 13, '#'), "\n"), absl::Now())
                  .ok();
      }
      ::_exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(write_lines, t);
  for (auto& t : threads) t.join();
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  REQUIRE(LogFiles(d.path).size() >= 3);  // it did rotate, several times
  for (const std::string& p : LogFiles(d.path)) CHECK(FileSize(p) <= o.max_bytes);
  // Every line whole and parseable, each writer's lines complete and in order.
  std::map<std::string, int> next;
  for (const Record& r : ReadAll(d.path)) {
    int& n = next[r.instance];
    REQUIRE(r.text == absl::StrCat("seq ", n, " ", std::string(n % 13, '#')));
    ++n;
  }
  CHECK(next.size() == kThreads + kProcs);
  for (const auto& [who, n] : next) CHECK(n == kLines);
}

// A log of three rotated files written by two instances, one record a second from kT0.
void WriteHistory(const std::string& dir, int count) {
  LogWriter a(dir, {16 << 10, 8}, "fn-a");
  LogWriter b(dir, {16 << 10, 8}, "fn-b");
  for (int i = 0; i < count; ++i) {
    LogWriter& w = i % 3 == 0 ? b : a;
    REQUIRE(w.Consume(Stream::kStdout, absl::StrCat("line ", i, " ", std::string(100, '-'), "\n"),
                      kT0 + absl::Seconds(i))
                .ok());
  }
}

TEST_CASE("the reader reads rotated files in order and filters by since, tail and instance") {
  TempDir d;
  WriteHistory(d.path, 400);  // ~190 bytes a record: 5 files
  REQUIRE(LogFiles(d.path).size() == 5);

  std::vector<Record> all = ReadAll(d.path);
  REQUIRE(all.size() == 400);
  for (int i = 0; i < 400; ++i)
    REQUIRE(absl::StartsWith(all[i].text, absl::StrCat("line ", i, " ")));

  ReadOptions since;
  since.since = kT0 + absl::Seconds(390);
  std::vector<Record> rs = ReadAll(d.path, since);
  REQUIRE(rs.size() == 10);
  CHECK(rs.front().time == kT0 + absl::Seconds(390));
  since.since = kT0 + absl::Seconds(390) + absl::Nanoseconds(1);
  CHECK(ReadAll(d.path, since).size() == 9);

  ReadOptions tail;
  tail.tail = 5;
  rs = ReadAll(d.path, tail);
  REQUIRE(rs.size() == 5);
  CHECK(absl::StartsWith(rs[0].text, "line 395 "));
  tail.tail = 100000;
  CHECK(ReadAll(d.path, tail).size() == 400);

  ReadOptions inst;
  inst.instance = "fn-b";
  rs = ReadAll(d.path, inst);
  REQUIRE(rs.size() == 134);
  for (const Record& r : rs) CHECK(r.instance == "fn-b");
  inst.tail = 2;
  inst.since = kT0 + absl::Seconds(100);
  rs = ReadAll(d.path, inst);
  REQUIRE(rs.size() == 2);
  CHECK(absl::StartsWith(rs[0].text, "line 396 "));
  CHECK(absl::StartsWith(rs[1].text, "line 399 "));
  inst.instance = "fn-none";
  CHECK(ReadAll(d.path, inst).empty());

  // An empty or missing log reads as empty.
  CHECK(ReadAll(d.path + "/missing").empty());
}

TEST_CASE("torn and foreign lines are skipped") {
  TempDir d;
  {
    std::ofstream f(d.path + "/" + kLogFileName + ".1", std::ios::binary);
    f << "not json\n{\"timestamp\":\"2023-11-14T22:13:20.000000000Z\",\"instance\":\"x\",\"str";
  }
  LogWriter w(d.path, {16 << 10, 3}, "fn");
  REQUIRE(w.Consume(Stream::kStdout, "ok\n", kT0).ok());
  std::vector<Record> rs = ReadAll(d.path);
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].text == "ok");
}

bool Readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST_CASE("following sees appended lines at once, across rotations by other writers") {
  TempDir d;
  WriteHistory(d.path, 10);
  ReadOptions o;
  o.follow = true;
  o.tail = 2;
  absl::StatusOr<std::unique_ptr<LogReader>> r = LogReader::Open(d.path, o);
  REQUIRE(r.ok());
  REQUIRE((*r)->wake_fd() >= 0);
  std::vector<Record> got;
  REQUIRE((*r)->Read(100, &got).ok());
  REQUIRE(Texts(got).size() == 2);
  CHECK(absl::StartsWith(got[0].text, "line 8 "));
  CHECK(!(*r)->done());
  got.clear();
  REQUIRE((*r)->Read(100, &got).ok());
  CHECK(got.empty());

  LogWriter w(d.path, {16 << 10, 8}, "fn-c");
  REQUIRE(w.Consume(Stream::kStdout, "new one\n", absl::Now()).ok());
  REQUIRE(Readable((*r)->wake_fd(), 1000));
  REQUIRE((*r)->Read(100, &got).ok());
  REQUIRE(Texts(got) == std::vector<std::string>{"new one"});

  // Three rotations between two reads (8 files kept): nothing lost, order kept.
  got.clear();
  for (int i = 0; i < 300; ++i) {
    REQUIRE(w.Consume(Stream::kStdout, absl::StrCat("more ", i, " ", std::string(100, '+'), "\n"),
                      absl::Now())
                .ok());
  }
  REQUIRE(Readable((*r)->wake_fd(), 1000));
  for (int spins = 0; spins < 100 && got.size() < 300; ++spins) REQUIRE((*r)->Read(64, &got).ok());
  REQUIRE(got.size() == 300);
  for (int i = 0; i < 300; ++i)
    REQUIRE(absl::StartsWith(got[i].text, absl::StrCat("more ", i, " ")));

  // A line being written (no newline yet) waits for its end.
  got.clear();
  {
    std::ofstream f(d.path + "/" + kLogFileName, std::ios::app | std::ios::binary);
    std::string rec;
    internal::AppendRecord(absl::Now(), "fn-d", "stdout", "half", &rec);
    f << rec.substr(0, 20);
    f.flush();
    REQUIRE((*r)->Read(100, &got).ok());
    CHECK(got.empty());
    f << rec.substr(20);
  }
  REQUIRE((*r)->Read(100, &got).ok());
  REQUIRE(Texts(got) == std::vector<std::string>{"half"});
}

TEST_CASE("following a function that has not written yet, with instance and since filters") {
  TempDir d;
  ReadOptions o;
  o.follow = true;
  o.instance = "fn-2";
  o.since = kT0 + absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<LogReader>> r = LogReader::Open(d.path + "/ns/fn", o);
  REQUIRE(r.ok());
  std::vector<Record> got;
  REQUIRE((*r)->Read(100, &got).ok());
  CHECK(got.empty());
  LogWriter w1(d.path + "/ns/fn", {16 << 10, 3}, "fn-1");
  LogWriter w2(d.path + "/ns/fn", {16 << 10, 3}, "fn-2");
  REQUIRE(w1.Consume(Stream::kStdout, "one\n", kT0 + absl::Seconds(10)).ok());
  REQUIRE(w2.Consume(Stream::kStdout, "early\n", kT0).ok());
  REQUIRE(w2.Consume(Stream::kStdout, "two\n", kT0 + absl::Seconds(10)).ok());
  REQUIRE(Readable((*r)->wake_fd(), 1000));
  REQUIRE((*r)->Read(100, &got).ok());
  CHECK(Texts(got) == std::vector<std::string>{"two"});
}

// The built faasd-logger under the shim's contract: fds 3/4 the streams, 5 the ready pipe,
// argv pairs in any order, CONTAINER_ID in the environment, SIGTERM after the pipes close.
TEST_CASE("faasd-logger follows containerd's binary log contract", "[live]") {
  const char* bin = std::getenv("FAASD_LOGGER_BIN");
  if (bin == nullptr) {
    WARN("FAASD_LOGGER_BIN not set; skipped");
    return;
  }
  TempDir d;
  const std::string dir = d.path + "/logs/ns/fn";
  int out[2], err[2], ready[2];
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  REQUIRE(::pipe(ready) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Arrange fds 3, 4, 5 (dup first to numbers above them so nothing collides).
    int o = ::fcntl(out[0], F_DUPFD, 10), e = ::fcntl(err[0], F_DUPFD, 10),
        w = ::fcntl(ready[1], F_DUPFD, 10);
    ::dup2(o, 3);
    ::dup2(e, 4);
    ::dup2(w, 5);
    for (int fd = 6; fd < 64; ++fd) ::close(fd);
    std::string files = "files", dir_key = "dir", max_key = "max-bytes";
    char* argv[] = {
        const_cast<char*>(bin),         files.data(),   const_cast<char*>("2"),     dir_key.data(),
        const_cast<char*>(dir.c_str()), max_key.data(), const_cast<char*>("16384"), nullptr};
    char* envp[] = {const_cast<char*>("CONTAINER_ID=fn-0123abcd"),
                    const_cast<char*>("CONTAINER_NAMESPACE=ns"), nullptr};
    ::execve(bin, argv, envp);
    ::_exit(127);
  }
  ::close(out[0]);
  ::close(err[0]);
  ::close(ready[1]);
  char b;
  CHECK(::read(ready[0], &b, 1) == 0);  // closed: ready
  ::close(ready[0]);
  REQUIRE(::write(out[1], "to stdout\n", 10) == 10);
  REQUIRE(::write(err[1], "to stderr\nunterminated", 22) == 22);
  // Lines appear while the logger runs (poll with a deadline).
  std::vector<Record> rs;
  for (absl::Time deadline = absl::Now() + absl::Seconds(5);
       rs.size() < 2 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(10))) {
    rs = ReadAll(dir);
  }
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].instance == "fn-0123abcd");
  // The end of a stream flushes its unterminated last line.
  ::close(err[1]);
  for (absl::Time deadline = absl::Now() + absl::Seconds(5);
       rs.size() < 3 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(10))) {
    rs = ReadAll(dir);
  }
  REQUIRE(rs.size() == 3);
  CHECK(rs[2].text == "unterminated");
  CHECK(rs[2].stream == "stderr");
  // Big output rotates within 2 files of 16 KiB.
  std::string big;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&big, "bulk ", i, "\n");
  REQUIRE(::write(out[1], big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  ::close(out[1]);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  rs = ReadAll(dir);
  REQUIRE(!rs.empty());
  CHECK(rs.back().text == "bulk 1999");
  CHECK(rs.back().instance == "fn-0123abcd");
  CHECK(LogFiles(dir).size() == 2);
  for (const std::string& p : LogFiles(dir)) CHECK(FileSize(p) <= 16384);
}

}  // namespace
}  // namespace faasd::logs
