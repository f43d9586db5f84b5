// Logs: where a task's stdout/stderr go (its faasd-logger) and how /system/logs reads them back.
#include "logs/logs.h"

#include "absl/strings/str_cat.h"
#include "provider/containerd_provider.h"

namespace faasd::provider {
namespace {

// LogStream over the function's rotated log files.
class FileLogStream final : public LogStream {
 public:
  explicit FileLogStream(std::unique_ptr<logs::LogReader> reader) : reader_(std::move(reader)) {}

  absl::Status Read(size_t max, std::vector<LogMessage>* out) override {
    records_.clear();
    absl::Status s = reader_->Read(max, &records_);
    for (logs::Record& r : records_) {
      out->push_back(LogMessage{std::move(r.instance), r.time, std::move(r.text)});
    }
    return s;
  }
  bool Done() const override { return reader_->done(); }
  int WakeFd() const override { return reader_->wake_fd(); }

 private:
  std::unique_ptr<logs::LogReader> reader_;
  std::vector<logs::Record> records_;
};

}  // namespace

std::string ContainerdProvider::TaskLogUri(const std::string& ns, const std::string& name) const {
  return logs::TaskLogUri(options_.logger, options_.state_dir, ns, name, options_.log_rotation,
                          options_.log_journal);
}

absl::StatusOr<std::unique_ptr<LogStream>> ContainerdProvider::Logs(const LogRequest& request) {
  if (absl::Status s = ValidateName("function name", request.name); !s.ok()) return s;
  absl::StatusOr<std::string> ns = ResolveNamespace(request.ns);
  if (!ns.ok()) return ns.status();
  // Only deployed functions: a removed function's log stays on disk until a function of the
  // same name is deployed again and continues it.
  absl::StatusOr<Found> found = FindDeployed(*ns, request.name);
  if (!found.ok()) return found.status();
  logs::ReadOptions o;
  o.instance = request.instance;
  o.since = request.since;
  o.tail = request.tail;
  o.follow = request.follow;
  absl::StatusOr<std::unique_ptr<logs::LogReader>> reader =
      logs::LogReader::Open(logs::FunctionLogDir(options_.state_dir, *ns, request.name), o);
  if (!reader.ok()) {
    return absl::InternalError(
        absl::StrCat("logs of ", request.name, ": ", reader.status().message()));
  }
  return std::make_unique<FileLogStream>(std::move(*reader));
}

}  // namespace faasd::provider
