// GET /system/logs: a function's captured stdout/stderr as NDJSON, the way faas-provider's log
// handler serves it: the query read with Go's semantics (the last of repeated parameters,
// strconv.Atoi for tail, strconv.ParseBool for follow, time.Parse(RFC3339) for since), 422
// "could not parse the log request" for a bad tail or since, then one
// {"name","namespace","instance","timestamp","text"} per line, chunked. A follow streams new
// lines as they are written until the client goes away.
#include <poll.h>

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
// How long a follow waits for new lines before checking again (client gone, server stop, no
// inotify).
constexpr int kFollowPollMs = 250;

// One response being streamed: lives as long as httplib calls its content provider.
class LogResponse {
 public:
  LogResponse(provider::LogRequest request, std::unique_ptr<provider::LogStream> stream)
      : request_(std::move(request)), stream_(std::move(stream)) {}

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
    return WaitForMore(sink);
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

  // Following with nothing new: wait for a write to the log or a tick, then ask httplib whether
  // the client is still there (its socket reads neither data nor end of stream), so a client
  // that went away while nothing was written is noticed within a tick.
  bool WaitForMore(httplib::DataSink& sink) {
    struct pollfd wake = {stream_->WakeFd(), POLLIN, 0};
    ::poll(&wake, 1, kFollowPollMs);
    return sink.is_writable() || ClientGone();
  }

  bool ClientGone() {
    LogDebug("logs ", request_.name, ": ", request_.follow ? "follower" : "reader", " went away");
    return false;
  }

  const provider::LogRequest request_;
  std::unique_ptr<provider::LogStream> stream_;
  std::vector<provider::LogMessage> batch_;
};

}  // namespace

void GatewayServer::FunctionLogs(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<provider::LogRequest> parsed = ParseLogQuery(req.params);
  if (!parsed.ok()) return WriteError(res, parsed.status());
  provider::LogRequest q = *std::move(parsed);
  absl::StatusOr<std::unique_ptr<provider::LogStream>> stream = provider_.Logs(q);
  if (!stream.ok()) return WriteError(res, stream.status());
  auto response = std::make_shared<LogResponse>(std::move(q), std::move(*stream));
  res.set_chunked_content_provider(
      kNdjson, [response](size_t, httplib::DataSink& sink) { return response->Next(sink); });
}

}  // namespace faasd::gateway
