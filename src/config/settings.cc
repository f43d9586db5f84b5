#include "config/settings.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/fs.h"

namespace faasd::config {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

const std::vector<Key>& AllKeys() {
  static const std::vector<Key> keys = {
      {"listen", Kind::kHostPort, "0.0.0.0:8080"},
      {"state-dir", Kind::kPath, "/var/lib/faasd"},
      {"containerd-address", Kind::kPath, "/run/containerd/containerd.sock"},
      {"namespace", Kind::kText, "openfaas-fn"},
      {"cni-bin-dir", Kind::kText, "/usr/lib/cni:/opt/cni/bin"},
      {"cni-conf-dir", Kind::kPath, "/etc/cni/net.d"},
      {"cni-network", Kind::kText, "openfaas-cni-bridge"},
      {"cni-bridge", Kind::kText, "openfaas0"},
      {"cni-subnet", Kind::kText, "10.62.0.0/16"},
      {"cni-ipam-dir", Kind::kPath, "/var/lib/cni/networks"},
      {"cni-cache-dir", Kind::kPath, ""},
      {"cni-extra-plugins", Kind::kText, ""},
      {"insecure-registry", Kind::kText, "", true},
      {"registry-ca", Kind::kPath, ""},
      {"docker-config", Kind::kPath, ""},
      {"nameserver", Kind::kText, "", true},
      {"pull-policy", Kind::kChoice, "Always", false, {"Always", "IfNotPresent", "Never"}},
      {"stop-grace", Kind::kSeconds, "30"},
      {"reconcile-interval", Kind::kSeconds, "2"},
      {"paused-max", Kind::kCount, "16"},
      {"paused-ttl", Kind::kSeconds, "600"},
      {"upstream-timeout", Kind::kSeconds, "60"},
      {"max-body-bytes", Kind::kPositive, "33554432"},
      {"max-connections", Kind::kPositive, "10000"},
      {"http-head-timeout", Kind::kSeconds, "10"},
      {"http-idle-timeout", Kind::kSeconds, "60"},
      {"shutdown-grace", Kind::kSeconds, "20"},
      {"max-image-bytes", Kind::kPositive, "8589934592"},
      {"log-level", Kind::kChoice, "info", false, {"debug", "info", "warning", "error"}},
      {"log-file", Kind::kPath, ""},
      {"log-max-bytes", Kind::kPositive, "10485760"},
      {"log-files", Kind::kPositive, "3"},
      {"logger", Kind::kPath, ""},
      {"function-logs-journal", Kind::kChoice, "auto", false, {"auto", "off"}},
      {"autoscale-interval", Kind::kSeconds, "2"},
      {"autoscale-window", Kind::kSeconds, "30"},
      {"autoscale-all", Kind::kChoice, "false", false, {"true", "false"}, /*bare=*/"true"},
      {"nats-url", Kind::kText, "nats://127.0.0.1:4222", false, {}, nullptr,
       /*may_be_empty=*/true},
      {"async-max-body-bytes", Kind::kPositive, "262144"},
      {"queue-concurrency", Kind::kPositive, "4"},
      {"services", Kind::kChoice, "on", false, {"on", "off"}},
      {"services-namespace", Kind::kText, "openfaas"},
      {"nats-image", Kind::kText, "docker.io/library/nats:2.9.10"},
      {"prometheus-image", Kind::kText, "docker.io/prom/prometheus:v2.42.0"},
      {"nats-address", Kind::kHostPort, "127.0.0.1:4222"},
      {"prometheus-address", Kind::kHostPort, "127.0.0.1:9090"},
      {"images-dir", Kind::kPath, ""},
      {"pid-file", Kind::kPath, ""},
  };
  return keys;
}

bool IsWholeNumber(absl::string_view v) {
  if (v.empty() || v.size() > 19) return false;
  for (char c : v) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

absl::Status Add(Settings* s, const Key& key, std::string value, std::string origin) {
  auto& values = s->values[key.name];
  if (!values.empty() && !key.repeatable) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": ", key.name, " given twice (first at ", s->origins[key.name],
                     "); only insecure-registry and nameserver repeat"));
  }
  if (absl::Status st = CheckValue(key, value); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": ", key.name, " = ", value, ": ", st.message()));
  }
  values.push_back(std::move(value));
  if (s->origins.count(key.name) == 0) s->origins[key.name] = std::move(origin);
  return absl::OkStatus();
}

}  // namespace

absl::Span<const Key> Keys() { return AllKeys(); }

const Key* FindKey(absl::string_view name) {
  for (const Key& k : AllKeys()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string Settings::Get(const std::string& name, const std::string& def) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? def : it->second.back();
}

std::vector<std::string> Settings::All(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

absl::Status CheckValue(const Key& key, absl::string_view v) {
  if (v.empty()) {
    return key.may_be_empty ? absl::OkStatus() : absl::InvalidArgumentError("empty value");
  }
  switch (key.kind) {
    case Kind::kText:
      return absl::OkStatus();
    case Kind::kSeconds:
      return IsWholeNumber(v) ? absl::OkStatus()
                              : absl::InvalidArgumentError("not a whole number of seconds");
    case Kind::kCount:
      return IsWholeNumber(v) ? absl::OkStatus()
                              : absl::InvalidArgumentError("not a whole number");
    case Kind::kPositive: {
      uint64_t n = 0;
      return IsWholeNumber(v) && absl::SimpleAtoi(v, &n) && n > 0
                 ? absl::OkStatus()
                 : absl::InvalidArgumentError("not a whole number above 0");
    }
    case Kind::kChoice:
      for (const char* c : key.choices) {
        if (v == c) return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          absl::StrCat("not one of ", absl::StrJoin(key.choices, ", ")));
    case Kind::kHostPort: {
      const size_t colon = v.rfind(':');
      int port = -1;
      if (colon == absl::string_view::npos || colon == 0 ||
          !IsWholeNumber(v.substr(colon + 1)) || !absl::SimpleAtoi(v.substr(colon + 1), &port) ||
          port > 65535) {
        return absl::InvalidArgumentError("not HOST:PORT (PORT 0-65535)");
      }
      return absl::OkStatus();
    }
    case Kind::kPath:
      return v.front() == '/' ? absl::OkStatus()
                              : absl::InvalidArgumentError("not an absolute path");
  }
  return absl::InternalError("unknown kind");
}

absl::StatusOr<Settings> ParseConfigText(absl::string_view text, absl::string_view path) {
  Settings s;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    const std::string where = absl::StrCat(path, ":", number);
    // A comment starts the line or follows a blank: values hold no " #".
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line = line.substr(0, i);
        break;
      }
    }
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", line, "\" is not `key = value`"));
    }
    const absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    const Key* key = FindKey(absl::StripPrefix(name, "--"));
    if (key == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key \"", name, "\" (`faasd config` lists the keys)"));
    }
    if (absl::Status st = Add(&s, *key, std::string(value), where); !st.ok()) return st;
  }
  return s;
}

absl::StatusOr<Settings> ParseFlags(absl::Span<char* const> args, std::string* config_path) {
  Settings s;
  config_path->clear();
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
    }
    std::string name(arg), value;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else if (const Key* k = FindKey(name); k != nullptr && k->bare_value != nullptr) {
      value = k->bare_value;  // --autoscale-all alone; never takes the next argument
    } else if (i + 1 < args.size()) {
      value = args[++i];
    }
    if (name == "config") {
      if (value.empty()) return absl::InvalidArgumentError("--config: empty path");
      *config_path = value;
      continue;
    }
    const Key* key = FindKey(name);
    if (key == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!key->repeatable) {  // a repeated flag replaces the earlier one
      s.values.erase(name);
      s.origins.erase(name);
    }
    if (absl::Status st = Add(&s, *key, value, absl::StrCat("--", name)); !st.ok()) return st;
  }
  return s;
}

Settings Merge(Settings file, const Settings& flags) {
  for (const auto& [name, values] : flags.values) {
    file.values[name] = values;
    file.origins[name] = flags.origins.at(name);
  }
  return file;
}

absl::StatusOr<Settings> LoadConfigFile(const std::string& path) {
  const std::string& p = path.empty() ? std::string(kDefaultConfigPath) : path;
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT && path.empty()) return Settings{};
    return absl::InvalidArgumentError(absl::StrCat("config ", p, ": ", std::strerror(errno)));
  }
  absl::StatusOr<std::string> text = ReadRegularFile(fd.get(), kMaxConfigBytes, "config " + p);
  if (!text.ok()) return text.status();
  return ParseConfigText(*text, p);
}

absl::StatusOr<Settings> Load(absl::Span<char* const> args) {
  std::string path;
  absl::StatusOr<Settings> flags = ParseFlags(args, &path);
  if (!flags.ok()) return flags.status();
  absl::StatusOr<Settings> file = LoadConfigFile(path);
  if (!file.ok()) return file.status();
  return Merge(*std::move(file), *flags);
}

std::string Render(const Settings& settings) {
  std::string out;
  for (const Key& key : Keys()) {
    auto it = settings.values.find(key.name);
    if (it == settings.values.end() || it->second.empty()) {
      absl::StrAppend(&out, "# ", key.name, " = ", key.default_value,
                      *key.default_value == '\0' ? "(unset or derived)" : "", "  (default)\n");
      continue;
    }
    const std::string& origin = settings.origins.at(key.name);
    for (const std::string& v : it->second) {
      absl::StrAppend(&out, key.name, " = ", v, "  # ", origin, "\n");
    }
  }
  return out;
}

}  // namespace faasd::config
