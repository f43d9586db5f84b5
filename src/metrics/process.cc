// process_* metrics of the daemon itself, from /proc/self, with the Go client's names so
// existing dashboards work.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "metrics/metrics.h"

namespace faasd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Seconds since the epoch at boot, from /proc/stat's btime line; 0 when unreadable.
double BootTime() {
  for (absl::string_view line : absl::StrSplit(ReadSmallFile("/proc/stat"), '\n')) {
    double v = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &v)) return v;
  }
  return 0;
}

int CountOpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory stream's own fd
}

}  // namespace

std::vector<MetricFamily> CollectProcessMetrics() {
  std::vector<MetricFamily> out;
  // /proc/self/stat: "pid (comm) state ..."; comm may hold spaces, so split after the last ')'.
  const std::string stat = ReadSmallFile("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::vector<absl::string_view> f = absl::StrSplit(
        absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
    // f[0] is field 3 (state): field N of proc(5) is f[N - 3].
    auto field = [&f](size_t n) {
      double v = 0;
      return n - 3 < f.size() && absl::SimpleAtod(f[n - 3], &v) ? v : 0.0;
    };
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out.push_back(SingleValueFamily("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                      MetricType::Counter, (field(14) + field(15)) / ticks));
    out.push_back(SingleValueFamily("process_threads", "Number of OS threads in the process.", MetricType::Gauge,
                      field(20)));
    out.push_back(SingleValueFamily("process_start_time_seconds",
                      "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                      BootTime() + field(22) / ticks));
    out.push_back(SingleValueFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                      MetricType::Gauge, field(23)));
    out.push_back(SingleValueFamily("process_resident_memory_bytes", "Resident memory size in bytes.",
                      MetricType::Gauge, field(24) * page));
  }
  out.push_back(SingleValueFamily("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                    CountOpenFds()));
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out.push_back(SingleValueFamily("process_max_fds", "Maximum number of open file descriptors.",
                      MetricType::Gauge, static_cast<double>(lim.rlim_cur)));
  }
  return out;
}

}  // namespace faasd::metrics
