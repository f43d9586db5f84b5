// GET /system/logs: a function's captured stdout/stderr as NDJSON, the way faas-provider's log
// handler serves it: the query read with Go's semantics (the last of repeated parameters,
// strconv.Atoi for tail, strconv.ParseBool for follow, time.Parse(RFC3339) for since), 422
// "could not parse the log request" for a bad tail or since, then one
// {"name","namespace","instance","timestamp","text"} per line, chunked. A follow streams new
// lines as they are written until the client goes away.
#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "base/log.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"
#include "provider/types.h"

namespace faasd::gateway {
namespace {

constexpr char kNdjson[] = "application/x-ndjson";
constexpr char kBadRequest[] = "could not parse the log request";
constexpr size_t kBatch = 256;  // messages per chunk at most
// How long a follow waits for new lines before checking again (server stop, no inotify).
constexpr int kFollowPollMs = 250;

// Go's url.Values lookup in faas-provider: the last value of a repeated parameter.
std::string LastParam(const httplib::Request& req, const char* key) {
  const size_t n = req.get_param_value_count(key);
  return n == 0 ? "" : req.get_param_value(key, n - 1);
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

// The address as httplib renders it (getnameinfo, numeric).
bool AddressIs(const sockaddr_storage& addr, socklen_t len, const std::string& ip, int port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  return ip == host && port == std::atoi(serv);
}

// httplib hands handlers no socket, and a follow must notice a client that went away while
// nothing is written. The connection's descriptor is the one socket of ours with this request's
// two endpoints; -1 when none is found (the follow then ends at its first failed write).
int FindClientSocket(const httplib::Request& req) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (struct dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
    struct stat st;
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0 &&
        ::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
        AddressIs(peer, peer_len, req.remote_addr, req.remote_port) &&
        AddressIs(local, local_len, req.local_addr, req.local_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// One response being streamed: lives as long as httplib calls its content provider.
class LogResponse {
 public:
  LogResponse(provider::LogRequest request, std::unique_ptr<provider::LogStream> stream,
              int client_fd)
      : request_(std::move(request)), stream_(std::move(stream)), client_fd_(client_fd) {}

  // One step of httplib's chunked content provider: false ends the response early.
  bool Next(httplib::DataSink& sink) {
    batch_.clear();
    if (absl::Status s = stream_->Read(kBatch, &batch_); !s.ok()) {
      // The status line is gone already; end the stream and say why in the daemon's log.
      LogWarning("logs ", request_.name, ": ", s.message());
      sink.done();
      return true;
    }
    if (!batch_.empty()) {
      std::string out;
      for (const provider::LogMessage& m : batch_) AppendLine(m, &out);
      return sink.write(out.data(), out.size()) || ClientGone();
    }
    if (stream_->Done()) {
      sink.done();
      return true;
    }
    return WaitForMore();
  }

 private:
  void AppendLine(const provider::LogMessage& m, std::string* out) const {
    nlohmann::ordered_json j;
    j["name"] = request_.name;
    j["namespace"] = request_.ns;
    j["instance"] = m.instance;
    j["timestamp"] = provider::Rfc3339(m.timestamp);
    j["text"] = m.text;
    out->append(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    out->push_back('\n');
  }

  // Following with nothing new: wait for a write to the log, the client leaving, or a tick.
  bool WaitForMore() {
    struct pollfd fds[2] = {{stream_->WakeFd(), POLLIN, 0}, {client_fd_, POLLRDHUP, 0}};
    if (::poll(fds, 2, kFollowPollMs) > 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      return ClientGone();
    }
    return true;
  }

  bool ClientGone() {
    LogDebug("logs ", request_.name, ": ", request_.follow ? "follower" : "reader", " went away");
    return false;
  }

  const provider::LogRequest request_;
  std::unique_ptr<provider::LogStream> stream_;
  const int client_fd_;  // borrowed from httplib, which closes it after this response
  std::vector<provider::LogMessage> batch_;
};

}  // namespace

void GatewayServer::FunctionLogs(const httplib::Request& req, httplib::Response& res) {
  provider::LogRequest q;
  q.name = LastParam(req, "name");
  if (absl::Status s = CheckName("function name", q.name); !s.ok()) return WriteError(res, s);
  q.ns = LastParam(req, "namespace");
  if (q.ns.empty()) q.ns = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", q.ns); !s.ok()) return WriteError(res, s);
  q.instance = LastParam(req, "instance");
  if (const std::string tail = LastParam(req, "tail");
      !tail.empty() && !ParseGoInt(tail, &q.tail)) {
    return WriteError(res, 422,
                      absl::StrCat(kBadRequest, ": tail \"", tail, "\" is not an integer"));
  }
  if (const std::string since = LastParam(req, "since"); !since.empty()) {
    absl::Time t;
    if (!ParseRfc3339(since, &t)) {
      return WriteError(res, 422,
                        absl::StrCat(kBadRequest, ": since \"", since, "\" is not RFC 3339"));
    }
    q.since = t;
  }
  q.follow = ParseGoBool(LastParam(req, "follow"));
  absl::StatusOr<std::unique_ptr<provider::LogStream>> stream = provider_.Logs(q);
  if (!stream.ok()) return WriteError(res, stream.status());
  const int client_fd = q.follow ? FindClientSocket(req) : -1;
  auto response = std::make_shared<LogResponse>(std::move(q), std::move(*stream), client_fd);
  res.set_chunked_content_provider(
      kNdjson, [response](size_t, httplib::DataSink& sink) { return response->Next(sink); });
}

}  // namespace faasd::gateway
