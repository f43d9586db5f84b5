#include "test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "catch.hpp"

namespace faasd::gateway::testing {

std::shared_ptr<const provider::RoutingSnapshot> FakeRoutes::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snap_;
}

void FakeRoutes::Set(const std::string& key, std::vector<provider::Endpoint> endpoints) {
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<provider::RoutingSnapshot>(*snap_);
  next->functions[key] = std::move(endpoints);
  snap_ = next;
  changed_.notify_all();
}

std::shared_ptr<const provider::RoutingSnapshot> FakeRoutes::AwaitReady(const std::string& key,
                                                                        absl::Time deadline) {
  ++awaits;
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [&] {
    auto it = snap_->functions.find(key);
    return it != snap_->functions.end() && !it->second.empty();
  };
  if (snap_->functions.count(key) == 0) return nullptr;
  changed_.wait_until(lock, absl::ToChronoTime(deadline), ready);
  return ready() ? snap_ : nullptr;
}

void FakeRoutes::ReportUnreachable(const std::string& key, const provider::Endpoint& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  unreachable.push_back(absl::StrCat(key, " ", endpoint.ip, ":", endpoint.port));
  auto next = std::make_shared<provider::RoutingSnapshot>(*snap_);
  auto& eps = next->functions[key];
  eps.erase(std::remove_if(eps.begin(), eps.end(),
                           [&](const provider::Endpoint& e) {
                             return e.ip == endpoint.ip && e.port == endpoint.port;
                           }),
            eps.end());
  snap_ = next;
}

namespace {
std::string Key(const std::string& name, const std::string& ns) {
  return absl::StrCat(name, ".", ns.empty() ? provider::kDefaultNamespace : ns);
}
}  // namespace

absl::StatusOr<std::vector<provider::FunctionStatus>> FakeProvider::List(const std::string& ns) {
  if (ns != provider::kDefaultNamespace && ns != "other") {
    return absl::InvalidArgumentError(absl::StrCat("namespace ", ns, ": not found"));
  }
  std::lock_guard<std::mutex> lock(mu);
  std::vector<provider::FunctionStatus> out;
  for (const auto& [key, d] : functions) {
    if ((d.namespace_.empty() ? provider::kDefaultNamespace : d.namespace_) != ns) continue;
    out.push_back(provider::StatusFromDeployment(d));
  }
  return out;
}

absl::StatusOr<provider::FunctionStatus> FakeProvider::Get(const std::string& name,
                                                           const std::string& ns) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = functions.find(Key(name, ns));
  if (it == functions.end()) {
    return absl::NotFoundError(absl::StrCat("function ", name, ": not found"));
  }
  provider::FunctionStatus st = provider::StatusFromDeployment(it->second);
  if (auto n = scaled.find(it->first); n != scaled.end()) st.replicas = n->second;
  return st;
}

absl::Status FakeProvider::Deploy(const provider::FunctionDeployment& d) {
  std::lock_guard<std::mutex> lock(mu);
  if (!next_deploy_error.ok()) {
    absl::Status s = next_deploy_error;
    next_deploy_error = absl::OkStatus();
    return s;
  }
  if (functions.count(Key(d.service, d.namespace_))) {
    return absl::AlreadyExistsError(absl::StrCat("function ", d.service, ": already exists"));
  }
  functions[Key(d.service, d.namespace_)] = d;
  return absl::OkStatus();
}

absl::Status FakeProvider::Update(const provider::FunctionDeployment& d) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = functions.find(Key(d.service, d.namespace_));
  if (it == functions.end()) {
    return absl::NotFoundError(absl::StrCat("function ", d.service, ": not found"));
  }
  it->second = d;
  return absl::OkStatus();
}

absl::Status FakeProvider::Remove(const std::string& name, const std::string& ns) {
  std::lock_guard<std::mutex> lock(mu);
  if (functions.erase(Key(name, ns)) == 0) {
    return absl::NotFoundError(absl::StrCat("function ", name, ": not found"));
  }
  return absl::OkStatus();
}

absl::Status FakeProvider::Scale(const std::string& name, const std::string& ns,
                                 uint64_t replicas) {
  std::lock_guard<std::mutex> lock(mu);
  if (!functions.count(Key(name, ns))) {
    return absl::NotFoundError(absl::StrCat("function ", name, ": not found"));
  }
  scaled[Key(name, ns)] = replicas;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FakeProvider::ListSecrets(const std::string& ns) {
  std::lock_guard<std::mutex> l(mu);
  const std::string suffix = "." + (ns.empty() ? std::string(provider::kDefaultNamespace) : ns);
  std::vector<std::string> out;
  for (const auto& [key, value] : secrets) {
    if (key.size() > suffix.size() &&
        key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(key.substr(0, key.size() - suffix.size()));
  }
  return out;
}

static std::string SecretKey(const std::string& name, const std::string& ns) {
  return name + "." + (ns.empty() ? std::string(provider::kDefaultNamespace) : ns);
}

absl::Status FakeProvider::CreateSecret(const provider::Secret& secret) {
  std::lock_guard<std::mutex> l(mu);
  if (!secrets.emplace(SecretKey(secret.name, secret.namespace_), secret.bytes()).second)
    return absl::AlreadyExistsError("secret " + secret.name + " exists");
  return absl::OkStatus();
}

absl::Status FakeProvider::UpdateSecret(const provider::Secret& secret) {
  std::lock_guard<std::mutex> l(mu);
  auto it = secrets.find(SecretKey(secret.name, secret.namespace_));
  if (it == secrets.end()) return absl::NotFoundError("secret " + secret.name + " not found");
  it->second = secret.bytes();
  return absl::OkStatus();
}

absl::Status FakeProvider::DeleteSecret(const std::string& name, const std::string& ns) {
  std::lock_guard<std::mutex> l(mu);
  if (secrets.erase(SecretKey(name, ns)) == 0)
    return absl::NotFoundError("secret " + name + " not found");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FakeProvider::Namespaces() {
  std::lock_guard<std::mutex> l(mu);
  std::vector<std::string> out{provider::kDefaultNamespace};
  for (const auto& [name, ns] : namespaces) out.push_back(name);
  return out;
}

absl::StatusOr<provider::FunctionNamespace> FakeProvider::GetNamespace(const std::string& ns) {
  std::lock_guard<std::mutex> l(mu);
  if (ns == provider::kDefaultNamespace) return provider::FunctionNamespace{ns, {}, {}};
  auto it = namespaces.find(ns);
  if (it == namespaces.end()) return absl::NotFoundError("namespace " + ns + " not found");
  return it->second;
}

absl::Status FakeProvider::CreateNamespace(const provider::FunctionNamespace& ns) {
  std::lock_guard<std::mutex> l(mu);
  if (ns.name == provider::kDefaultNamespace || !namespaces.emplace(ns.name, ns).second)
    return absl::AlreadyExistsError("namespace " + ns.name + " exists");
  return absl::OkStatus();
}

absl::Status FakeProvider::UpdateNamespace(const provider::FunctionNamespace& ns) {
  std::lock_guard<std::mutex> l(mu);
  auto it = namespaces.find(ns.name);
  if (it == namespaces.end()) return absl::NotFoundError("namespace " + ns.name + " not found");
  it->second = ns;
  return absl::OkStatus();
}

absl::Status FakeProvider::DeleteNamespace(const std::string& ns) {
  std::lock_guard<std::mutex> l(mu);
  if (namespaces.erase(ns) == 0) return absl::NotFoundError("namespace " + ns + " not found");
  return absl::OkStatus();
}

GatewayFixture::GatewayFixture() {
  GatewayOptions o;
  o.listen_host = "127.0.0.1";
  o.port = 0;
  o.credentials = {"admin", "s3cret"};
  o.max_request_bytes = 4 << 20;
  o.version = "0.1.0";
  o.git_sha = "abc123";
  o.on_function_changed = [this] { ++functions_changed; };
  gateway = std::make_unique<Gateway>(o, provider, metrics, &history);
  REQUIRE(gateway->Start().ok());
  client = std::make_unique<httplib::Client>("127.0.0.1", gateway->port());
  client->set_basic_auth("admin", "s3cret");
}

GatewayFixture::~GatewayFixture() { gateway->Stop(); }

FakeLog::FakeLog() { (void)::pipe2(wake, O_NONBLOCK | O_CLOEXEC); }

FakeLog::~FakeLog() {
  ::close(wake[0]);
  ::close(wake[1]);
}

void FakeLog::Append(provider::LogMessage m) {
  std::lock_guard<std::mutex> lock(mu);
  messages.push_back(std::move(m));
  (void)!::write(wake[1], "x", 1);
}

namespace {

// Instance and since filters, the last `tail`, then (follow) what the test appends.
class FakeLogStream final : public provider::LogStream {
 public:
  FakeLogStream(std::shared_ptr<FakeLog> log, provider::LogRequest r, std::atomic<int>* open)
      : log_(std::move(log)), request_(std::move(r)), open_(open) {
    open_->fetch_add(1);
    std::lock_guard<std::mutex> lock(log_->mu);
    std::vector<size_t> matching;
    for (size_t i = 0; i < log_->messages.size(); ++i) {
      if (Matches(log_->messages[i])) matching.push_back(i);
    }
    size_t skip = request_.tail > 0 && matching.size() > static_cast<size_t>(request_.tail)
                      ? matching.size() - static_cast<size_t>(request_.tail)
                      : 0;
    backlog_.assign(matching.begin() + static_cast<long>(skip), matching.end());
    next_ = log_->messages.size();
  }
  ~FakeLogStream() override { open_->fetch_sub(1); }

  absl::Status Read(size_t max, std::vector<provider::LogMessage>* out) override {
    char buf[64];
    while (::read(log_->wake[0], buf, sizeof buf) > 0) {
    }
    std::lock_guard<std::mutex> lock(log_->mu);
    size_t n = 0;
    while (n < max && backlog_pos_ < backlog_.size()) {
      out->push_back(log_->messages[backlog_[backlog_pos_++]]);
      ++n;
    }
    while (request_.follow && n < max && next_ < log_->messages.size()) {
      const provider::LogMessage& m = log_->messages[next_++];
      if (Matches(m)) {
        out->push_back(m);
        ++n;
      }
    }
    return absl::OkStatus();
  }
  bool Done() const override { return !request_.follow && backlog_pos_ == backlog_.size(); }
  int WakeFd() const override { return request_.follow ? log_->wake[0] : -1; }

 private:
  bool Matches(const provider::LogMessage& m) const {
    return (request_.instance.empty() || m.instance == request_.instance) &&
           (!request_.since || m.timestamp >= *request_.since);
  }

  std::shared_ptr<FakeLog> log_;
  const provider::LogRequest request_;
  std::atomic<int>* open_;
  std::vector<size_t> backlog_;
  size_t backlog_pos_ = 0;
  size_t next_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<provider::LogStream>> FakeProvider::Logs(
    const provider::LogRequest& request) {
  std::shared_ptr<FakeLog> log;
  {
    std::lock_guard<std::mutex> lock(mu);
    last_log_request = request;
    const std::string key = Key(request.name, request.ns);
    if (!functions.count(key)) {
      return absl::NotFoundError(absl::StrCat("function ", request.name, ": not found"));
    }
    auto& l = logs[key];
    if (!l) l = std::make_shared<FakeLog>();
    log = l;
  }
  return std::unique_ptr<provider::LogStream>(
      new FakeLogStream(std::move(log), request, &open_log_streams));
}

EchoUpstream::EchoUpstream() {
  auto echo = [this](const httplib::Request& req, httplib::Response& res) {
    requests.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      client_ports_.insert(req.remote_port);
    }
    std::string out = absl::StrCat("method=", req.method, "\npath=", req.path, "\n");
    std::string query;
    for (const auto& [k, v] : req.params) absl::StrAppend(&query, k, "=", v, ";");
    absl::StrAppend(&out, "query=", query, "\nbody=", req.body, "\n");
    for (const auto& [k, v] : req.headers) absl::StrAppend(&out, "h:", k, "=", v, "\n");
    res.set_header("X-Duration-Seconds", "0.001");
    res.set_header("X-Upstream", "echo");
    res.set_content(out, "text/plain");
  };
  server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
    // Simulates a function slower than the gateway's timeout; not synchronisation.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    res.set_content("late", "text/plain");
  });
  server_.Get("/stream", [this](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/plain", [this](size_t offset, httplib::DataSink& sink) {
      if (offset == 0) {
        sink.write("first\n", 6);
        return true;
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!release_stream.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      sink.write("second\n", 7);
      sink.done();
      return true;
    });
  });
  server_.Get("/hop", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Connection", "keep-alive, X-Upstream-Private");
    res.set_header("X-Upstream-Private", "1");
    res.set_header("X-Upstream-Public", "1");
    res.set_content("hop", "text/plain");
  });
  server_.Get("/events", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("data: one\n\ndata: two\n\n", "text/event-stream");
  });
  server_.Get(".*", echo);
  server_.Post(".*", echo);
  server_.Put(".*", echo);
  server_.Patch(".*", echo);
  server_.Delete(".*", echo);
  server_.Options(".*", echo);
  server_.set_keep_alive_max_count(1000);
  port_ = server_.bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int EchoUpstream::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(client_ports_.size());
}

EchoUpstream::~EchoUpstream() {
  release_stream = true;
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

RawConn::RawConn(int port, int receive_buffer_bytes) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer_bytes > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof(receive_buffer_bytes));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

RawConn::~RawConn() { ::close(fd_); }

bool RawConn::Send(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string RawConn::ReadUntilClose(std::chrono::milliseconds timeout) {
  return Read(timeout, [](const std::string&) { return false; });
}

std::string RawConn::ReadResponse(std::chrono::milliseconds timeout) {
  return Read(timeout, [](const std::string& got) {
    const size_t end = got.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const size_t cl = got.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) return true;
    return got.size() >= end + 4 + std::stoul(got.substr(cl + 16));
  });
}

std::string RawConn::ReadUntil(const std::string& needle, std::chrono::milliseconds timeout) {
  return Read(timeout, [&](const std::string& got) { return absl::StrContains(got, needle); });
}

void RawConn::ShutdownSend() { ::shutdown(fd_, SHUT_WR); }

std::string RawConn::Read(std::chrono::milliseconds timeout,
                          const std::function<bool(const std::string&)>& done) {
  using Clock = std::chrono::steady_clock;
  std::string got;
  const auto deadline = Clock::now() + timeout;
  while (!done(got)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

}  // namespace faasd::gateway::testing
