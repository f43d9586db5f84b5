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
#include "base/log.h"
#include "gateway/http_errors.h"
#include "gateway/log_query.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"
#include "provider/types.h"

namespace faasd::gateway {
namespace {

constexpr char kNdjson[] = "application/x-ndjson";
constexpr size_t kBatch = 256;  // messages per chunk at most
// How long a follow waits for new lines before checking again (server stop, no inotify).
constexpr int kFollowPollMs = 250;

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
  absl::StatusOr<provider::LogRequest> parsed = ParseLogQuery(req.params);
  if (!parsed.ok()) return WriteError(res, parsed.status());
  provider::LogRequest q = *std::move(parsed);
  absl::StatusOr<std::unique_ptr<provider::LogStream>> stream = provider_.Logs(q);
  if (!stream.ok()) return WriteError(res, stream.status());
  const int client_fd = q.follow ? FindClientSocket(req) : -1;
  auto response = std::make_shared<LogResponse>(std::move(q), std::move(*stream), client_fd);
  res.set_chunked_content_provider(
      kNdjson, [response](size_t, httplib::DataSink& sink) { return response->Next(sink); });
}

}  // namespace faasd::gateway
