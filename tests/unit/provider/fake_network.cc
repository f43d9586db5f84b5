#include "fake_network.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace faasd::provider::testing {

absl::StatusOr<std::string> FakeNetwork::Attach(const std::string& container_id,
                                                const std::string& netns_path) {
  absl::MutexLock l(&mu_);
  if (netns_.count(netns_path) == 0 && !absl::StartsWith(netns_path, "/proc/")) {
    return absl::FailedPreconditionError(
        absl::StrCat("cni ADD ", container_id, ": no network namespace at ", netns_path));
  }
  std::string ip = absl::StrCat("10.62.0.", next_host_++);
  ips_[container_id] = ip;
  ++attaches_;
  return ip;
}

absl::Status FakeNetwork::Detach(const std::string& container_id, const std::string&) {
  absl::MutexLock l(&mu_);
  ips_.erase(container_id);
  return absl::OkStatus();
}

std::optional<std::string> FakeNetwork::LookupIp(const std::string& container_id) const {
  absl::MutexLock l(&mu_);
  auto it = ips_.find(container_id);
  if (it == ips_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FakeNetwork::AttachedContainers() const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, ip] : ips_) out.push_back(id);
  return out;
}

absl::Status FakeNetwork::CreateNetns(const std::string& path) {
  absl::MutexLock l(&mu_);
  if (netns_.count(path) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("netns ", path, ": already exists"));
  }
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("netns ", path, ": cannot create"));
  ::close(fd);
  netns_.insert(path);
  return absl::OkStatus();
}

absl::Status FakeNetwork::DeleteNetns(const std::string& path) {
  absl::MutexLock l(&mu_);
  netns_.erase(path);
  ::unlink(path.c_str());
  return absl::OkStatus();
}

bool FakeNetwork::IsNetns(const std::string& path) const {
  absl::MutexLock l(&mu_);
  return netns_.count(path) != 0;
}

size_t FakeNetwork::Namespaces() const {
  absl::MutexLock l(&mu_);
  return netns_.size();
}

int FakeNetwork::Attaches() const {
  absl::MutexLock l(&mu_);
  return attaches_;
}

}  // namespace faasd::provider::testing
