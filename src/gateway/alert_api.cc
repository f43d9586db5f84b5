// POST /system/alert: Alertmanager's webhook, as the CE gateway takes it. The payload is
// {"status", "receiver", "alerts": [{"status": "firing"|"resolved", "labels": {"alertname",
// "function_name": "NAME[.NAMESPACE]"}}]}; each alert steps its function up (firing) or back
// to its minimum (resolved), see provider::AlertReplicas. A body that is not such JSON is a 400;
// alerts that fail are numbered in a 500 body ("[i] cause" per line), the others still apply.
// As upstream, an alert without a function name, or for a function that is gone, is skipped.
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"
#include "provider/replicas.h"

namespace faasd::gateway {
namespace {

using nlohmann::json;

struct AlertEntry {
  bool firing = false;
  std::string function;  // as labelled: NAME or NAME.NAMESPACE; "" = none
};

// The alerts of a payload; false when the body is not one (wrong JSON or wrong types).
bool ParseAlerts(const std::string& body, std::vector<AlertEntry>* out) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto alerts = j.find("alerts");
  if (alerts == j.end() || alerts->is_null()) return true;
  if (!alerts->is_array()) return false;
  for (const json& a : *alerts) {
    if (!a.is_object()) return false;
    AlertEntry alert;
    auto status = a.find("status");
    if (status != a.end() && !status->is_null()) {
      if (!status->is_string()) return false;
      alert.firing = status->get<std::string>() == "firing";
    }
    auto labels = a.find("labels");
    if (labels != a.end() && !labels->is_null()) {
      if (!labels->is_object()) return false;
      auto name = labels->find("function_name");
      if (name != labels->end() && !name->is_null()) {
        if (!name->is_string()) return false;
        alert.function = name->get<std::string>();
      }
    }
    out->push_back(std::move(alert));
  }
  return true;
}

}  // namespace

absl::Status GatewayServer::ApplyAlert(bool firing, const std::string& function) {
  std::string name = function, ns = provider::kDefaultNamespace;
  if (const size_t dot = function.rfind('.'); dot != std::string::npos) {
    name = function.substr(0, dot);
    ns = function.substr(dot + 1);
  }
  if (absl::Status s = CheckName("function name", name); !s.ok()) return s;
  if (absl::Status s = CheckName("namespace", ns); !s.ok()) return s;
  const std::string key = absl::StrCat(name, ".", ns);
  absl::StatusOr<provider::FunctionStatus> f = provider_.Get(name, ns);
  if (!f.ok()) {
    if (f.status().code() != absl::StatusCode::kNotFound) return f.status();
    LogWarning("alert for ", key, ": no such function; skipped");
    return absl::OkStatus();
  }
  absl::StatusOr<provider::ScaleRange> range = provider::ParseScaleRange(f->labels);
  if (!range.ok()) return range.status();
  absl::StatusOr<uint64_t> factor = provider::ParseScaleFactor(f->labels);
  if (!factor.ok()) return factor.status();
  const uint64_t to = provider::AlertReplicas(firing, f->replicas, *range, *factor);
  if (to == f->replicas) return absl::OkStatus();
  if (absl::Status s = provider_.Scale(name, ns, to); !s.ok()) return s;
  LogInfo("alert ", firing ? "firing" : "resolved", " for ", key, ": ", f->replicas, " -> ", to);
  return absl::OkStatus();
}

void GatewayServer::Alert(const httplib::Request&, const std::string& body,
                          httplib::Response& res) {
  std::vector<AlertEntry> alerts;
  if (!ParseAlerts(body, &alerts)) {
    return WriteError(res, 400, "alert: body is not an Alertmanager webhook payload (JSON)");
  }
  std::string errors;
  for (size_t i = 0; i < alerts.size(); ++i) {
    if (alerts[i].function.empty()) continue;
    absl::Status s = ApplyAlert(alerts[i].firing, alerts[i].function);
    if (!s.ok()) {
      absl::StrAppend(&errors, "[", i, "] alert for ", alerts[i].function, ": ", s.message(), "\n");
    }
  }
  if (!errors.empty()) {
    LogWarning("alert: ", errors);
    res.status = 500;
    res.set_content(errors, "text/plain; charset=utf-8");
    return;
  }
  res.status = 200;
}

}  // namespace faasd::gateway
