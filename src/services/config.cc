// services.yaml: parsing, start order, restart arithmetic and the default file.
#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "services/services.h"
#include "yaml-cpp/yaml.h"

namespace faasd::services {
namespace {

const char* const kKeys[] = {
    "image", "command", "entrypoint", "environment", "volumes",          "ports",
    "user",  "cap_add", "depends_on", "restart",     "stop_grace_period"};

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Names the place of a problem: "services.yaml line 4: service nats: ports: ...".
class Where {
 public:
  Where(const std::string& file, std::string service = "")
      : file_(file), service_(std::move(service)) {}
  absl::Status Error(const YAML::Node& node, absl::string_view key, absl::string_view what) const {
    std::string at = absl::StrCat(file_);
    if (node.IsDefined() && node.Mark().line >= 0)
      absl::StrAppend(&at, " line ", node.Mark().line + 1);
    if (!service_.empty()) absl::StrAppend(&at, ": service ", service_);
    if (!key.empty()) absl::StrAppend(&at, ": ", key);
    return absl::InvalidArgumentError(absl::StrCat(at, ": ", what));
  }

 private:
  std::string file_;
  std::string service_;
};

bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
  });
}

// A command written as one string splits like a shell would split plain words and quotes.
absl::StatusOr<std::vector<std::string>> SplitWords(absl::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char c : s) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (absl::ascii_isspace(c)) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) return absl::InvalidArgumentError("unterminated quote");
  if (in_word) words.push_back(std::move(word));
  return words;
}

// A list of scalars, or (when `words`) one string split into words.
absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node, const Where& where,
                                                    absl::string_view key, bool words) {
  if (node.IsScalar() && words) {
    absl::StatusOr<std::vector<std::string>> split = SplitWords(node.Scalar());
    if (!split.ok()) return where.Error(node, key, split.status().message());
    return split;
  }
  if (!node.IsSequence()) return where.Error(node, key, "want a list");
  std::vector<std::string> out;
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) return where.Error(item, key, "want a list of strings");
    out.push_back(item.Scalar());
  }
  return out;
}

std::string ResolveHostPath(absl::string_view path, const std::string& state_dir) {
  if (absl::StartsWith(path, "/")) return std::string(path);
  absl::ConsumePrefix(&path, "./");
  return absl::StrCat(state_dir, "/", path);
}

absl::StatusOr<ServiceSpec::Volume> ParseVolume(absl::string_view spec,
                                                const std::string& state_dir) {
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", spec, "\": want HOST_PATH:CONTAINER_PATH[:ro|rw]"));
  }
  ServiceSpec::Volume v;
  if (!absl::StartsWith(parts[1], "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", spec, "\": the container path must be absolute"));
  }
  for (absl::string_view piece : absl::StrSplit(parts[0], '/')) {
    if (piece == "..") {
      return absl::InvalidArgumentError(absl::StrCat("\"", spec, "\": no \"..\" in host paths"));
    }
  }
  if (parts.size() == 3) {
    if (parts[2] != "ro" && parts[2] != "rw") {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", spec, "\": mode \"", parts[2], "\" is not ro or rw"));
    }
    v.read_only = parts[2] == "ro";
  }
  v.host = ResolveHostPath(parts[0], state_dir);
  v.container = std::string(parts[1]);
  return v;
}

absl::StatusOr<RestartPolicy> ParseRestart(absl::string_view s) {
  if (s == "always" || s == "unless-stopped") return RestartPolicy::kAlways;
  if (s == "on-failure") return RestartPolicy::kOnFailure;
  if (s == "no" || s == "false") return RestartPolicy::kNo;
  return absl::InvalidArgumentError(absl::StrCat("\"", s, "\" is not always, on-failure or no"));
}

absl::StatusOr<ServiceSpec> ParseService(const std::string& name, const YAML::Node& node,
                                         const std::string& state_dir, const Where& where) {
  ServiceSpec spec;
  spec.name = name;
  spec.line = node.Mark().line + 1;
  if (!node.IsMap()) return where.Error(node, "", "want a map of keys");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& value = kv.second;
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      return where.Error(kv.first, key,
                         absl::StrCat("unknown key (known: ", absl::StrJoin(kKeys, ", "), ")"));
    }
    if (key == "image" || key == "user" || key == "restart" || key == "stop_grace_period") {
      if (!value.IsScalar() || value.Scalar().empty()) {
        return where.Error(value, key, "want a non-empty string");
      }
    }
    if (key == "image") {
      spec.image = value.Scalar();
    } else if (key == "user") {
      spec.user = value.Scalar();
    } else if (key == "restart") {
      absl::StatusOr<RestartPolicy> p = ParseRestart(value.Scalar());
      if (!p.ok()) return where.Error(value, key, p.status().message());
      spec.restart = *p;
    } else if (key == "stop_grace_period") {
      if (!absl::ParseDuration(value.Scalar(), &spec.stop_grace) ||
          spec.stop_grace < absl::ZeroDuration() || spec.stop_grace > absl::Minutes(10)) {
        return where.Error(
            value, key, absl::StrCat("\"", value.Scalar(), "\" is not a duration of at most 10m"));
      }
    } else if (key == "command" || key == "entrypoint") {
      absl::StatusOr<std::vector<std::string>> words = StringList(value, where, key, true);
      if (!words.ok()) return words.status();
      (key == "command" ? spec.command : spec.entrypoint) = *std::move(words);
    } else if (key == "environment") {
      if (value.IsMap()) {
        for (const auto& e : value) {
          if (!e.second.IsScalar() && !e.second.IsNull()) {
            return where.Error(e.second, key, absl::StrCat(e.first.Scalar(), ": want a string"));
          }
          spec.environment.emplace_back(e.first.Scalar(),
                                        e.second.IsNull() ? "" : e.second.Scalar());
        }
      } else {
        absl::StatusOr<std::vector<std::string>> items = StringList(value, where, key, false);
        if (!items.ok()) return items.status();
        for (const std::string& item : *items) {
          const size_t eq = item.find('=');
          if (eq == 0 || eq == std::string::npos) {
            return where.Error(value, key, absl::StrCat("\"", item, "\": want NAME=VALUE"));
          }
          spec.environment.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        }
      }
    } else if (key == "volumes" || key == "ports" || key == "cap_add") {
      absl::StatusOr<std::vector<std::string>> items = StringList(value, where, key, false);
      if (!items.ok()) return items.status();
      for (const std::string& item : *items) {
        if (key == "volumes") {
          absl::StatusOr<ServiceSpec::Volume> v = ParseVolume(item, state_dir);
          if (!v.ok()) return where.Error(value, key, v.status().message());
          spec.volumes.push_back(*v);
        } else if (key == "ports") {
          absl::StatusOr<network::PortMapping> p = ParsePort(item);
          if (!p.ok()) return where.Error(value, key, p.status().message());
          spec.ports.push_back(*p);
        } else {
          std::string cap = absl::AsciiStrToUpper(item);
          if (!absl::StartsWith(cap, "CAP_")) cap = "CAP_" + cap;
          if (cap.size() <= 4 ||
              cap.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != std::string::npos) {
            return where.Error(value, key, absl::StrCat("\"", item, "\" is not a capability"));
          }
          spec.cap_add.push_back(cap);
        }
      }
    } else if (key == "depends_on") {
      if (value.IsMap()) {  // the long form: name: {condition: ...}
        for (const auto& d : value) spec.depends_on.push_back(d.first.Scalar());
      } else {
        absl::StatusOr<std::vector<std::string>> items = StringList(value, where, key, false);
        if (!items.ok()) return items.status();
        spec.depends_on = *std::move(items);
      }
    }
  }
  if (spec.image.empty()) return where.Error(node, "image", "missing");
  return spec;
}

}  // namespace

absl::StatusOr<network::PortMapping> ParsePort(std::string_view spec_in) {
  absl::string_view spec = Absl(spec_in);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("port \"", spec, "\": ", why));
  };
  network::PortMapping p;
  absl::string_view rest = spec;
  if (const size_t slash = rest.rfind('/'); slash != absl::string_view::npos) {
    p.protocol = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    if (p.protocol != "tcp" && p.protocol != "udp") return bad("protocol is not tcp or udp");
  }
  if (absl::StartsWith(rest, "[")) {  // [::1]:80:80
    const size_t close = rest.find("]:");
    if (close == absl::string_view::npos) return bad("unclosed [address]");
    p.host_ip = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 2);
  } else if (std::count(rest.begin(), rest.end(), ':') == 2) {
    const size_t colon = rest.find(':');
    p.host_ip = std::string(rest.substr(0, colon));
    rest = rest.substr(colon + 1);
  }
  if (p.host_ip.empty()) return bad("empty address");
  std::vector<absl::string_view> ports = absl::StrSplit(rest, ':');
  if (ports.size() > 2) return bad("want [ADDRESS:]HOST_PORT:CONTAINER_PORT[/tcp|udp]");
  auto number = [](absl::string_view s, int* out) {
    return absl::SimpleAtoi(s, out) && *out >= 1 && *out <= 65535;
  };
  if (!number(ports.back(), &p.container_port)) return bad("container port is not 1-65535");
  p.host_port = p.container_port;
  if (ports.size() == 2 && !number(ports[0], &p.host_port)) {
    return bad("host port is not 1-65535");
  }
  return p;
}

absl::StatusOr<std::vector<ServiceSpec>> ParseServicesFile(std::string_view yaml,
                                                           const std::string& state_dir,
                                                           const std::string& file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, " line ", e.mark.line + 1, ": not YAML: ", e.msg));
  }
  const Where top(file_name);
  if (root.IsNull()) return std::vector<ServiceSpec>{};
  if (!root.IsMap()) return top.Error(root, "", "want a map with the key `services`");
  std::vector<ServiceSpec> out;
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>("");
      // Compose files carry `version:` and often `networks:`; neither means anything here.
      if (key == "version" || key == "networks") continue;
      if (key != "services") return top.Error(kv.first, key, "unknown key (want `services`)");
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsMap()) return top.Error(kv.second, key, "want a map of services");
      for (const auto& s : kv.second) {
        const std::string name = s.first.as<std::string>("");
        const Where where(file_name, name);
        if (!IsDnsLabel(name)) {
          return where.Error(s.first, "",
                             "the name must be a DNS label (a-z, 0-9, '-', at most 63)");
        }
        if (name == "gateway" || name == "localhost") {
          return where.Error(s.first, "", "the name is taken (it resolves to the host)");
        }
        absl::StatusOr<ServiceSpec> spec = ParseService(name, s.second, state_dir, where);
        if (!spec.ok()) return spec.status();
        out.push_back(*std::move(spec));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, " line ", e.mark.line + 1, ": ", e.msg));
  }
  std::set<std::string> names;
  for (const ServiceSpec& s : out) names.insert(s.name);
  for (const ServiceSpec& s : out) {
    for (const std::string& d : s.depends_on) {
      if (!names.count(d)) {
        return absl::InvalidArgumentError(absl::StrCat(file_name, " line ", s.line, ": service ",
                                                       s.name, ": depends_on: \"", d,
                                                       "\" is not a service of this file"));
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<ServiceSpec>> StartOrder(const std::vector<ServiceSpec>& services) {
  std::map<std::string, const ServiceSpec*> by_name;
  for (const ServiceSpec& s : services) by_name[s.name] = &s;
  std::vector<ServiceSpec> order;
  std::map<std::string, int> state;  // 1 visiting, 2 placed
  std::vector<std::string> path;
  std::function<absl::Status(const ServiceSpec&)> visit = [&](const ServiceSpec& s) {
    if (state[s.name] == 2) return absl::OkStatus();
    if (state[s.name] == 1) {
      auto from = std::find(path.begin(), path.end(), s.name);
      std::vector<std::string> cycle(from, path.end());
      cycle.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("depends_on cycle: ", absl::StrJoin(cycle, " -> ")));
    }
    state[s.name] = 1;
    path.push_back(s.name);
    for (const std::string& d : s.depends_on) {
      auto it = by_name.find(d);
      if (it == by_name.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("service ", s.name, ": depends_on: \"", d, "\" is not a service"));
      }
      if (absl::Status st = visit(*it->second); !st.ok()) return st;
    }
    path.pop_back();
    state[s.name] = 2;
    order.push_back(s);
    return absl::OkStatus();
  };
  for (const ServiceSpec& s : services) {
    if (absl::Status st = visit(s); !st.ok()) return st;
  }
  return order;
}

absl::Duration RestartDelay(int restarts_in_a_row) {
  const int n = std::max(1, std::min(restarts_in_a_row, 20));
  return std::min(absl::Milliseconds(250) * (int64_t{1} << (n - 1)), absl::Seconds(30));
}

bool ShouldRestart(RestartPolicy policy, uint32_t exit_status) {
  switch (policy) {
    case RestartPolicy::kAlways:
      return true;
    case RestartPolicy::kOnFailure:
      return exit_status != 0;
    case RestartPolicy::kNo:
      return false;
  }
  return false;
}

std::string DefaultServicesFile(const DefaultsOptions& o) {
  return absl::StrCat(
      "# Services faasd runs beside the functions, in containerd namespace openfaas, on the\n"
      "# functions' bridge: every function and service resolves each of them by name (and\n"
      "# `gateway`, the daemon). A compose subset: image, command, entrypoint, environment,\n"
      "# volumes (relative host paths are under the state dir), ports (127.0.0.1 unless an\n"
      "# address is given), user, cap_add, depends_on, restart (always|on-failure|no),\n"
      "# stop_grace_period (10s).\n"
      "# Changed entries are replaced at the next `faasd up`; the daemon wrote this file\n"
      "# because there was none, and leaves it alone from now on.\n"
      "services:\n"
      "  nats:\n"
      "    image: ",
      o.nats_image, "\n",
      "    command: [\"-js\", \"-sd\", \"/data\", \"-p\", \"4222\", \"-m\", \"8222\"]\n"
      "    volumes:\n"
      "      - ./nats:/data\n"
      "    ports:\n"
      "      - \"",
      o.nats_address, ":4222\"\n",
      "    restart: always\n"
      "  prometheus:\n"
      "    image: ",
      o.prometheus_image, "\n",
      "    command: [\"--config.file=/etc/prometheus/prometheus.yml\",\n"
      "              \"--storage.tsdb.path=/prometheus\"]\n"
      "    user: \"65534:65534\"\n"
      "    volumes:\n"
      "      - ./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro\n"
      "      - ./prometheus/data:/prometheus\n"
      "    ports:\n"
      "      - \"",
      o.prometheus_address, ":9090\"\n", "    restart: always\n");
}

std::string PrometheusConfig(int gateway_port) {
  return absl::StrCat(
      "# Written by faasd at every start (edit services.yaml to mount your own instead).\n"
      "global:\n"
      "  scrape_interval: 5s\n"
      "  evaluation_interval: 15s\n"
      "scrape_configs:\n"
      "  - job_name: prometheus\n"
      "    static_configs:\n"
      "      - targets: [\"localhost:9090\"]\n"
      "  - job_name: gateway\n"
      "    static_configs:\n"
      "      - targets: [\"gateway:",
      gateway_port, "\"]\n");
}

}  // namespace faasd::services
