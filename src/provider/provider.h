// The provider: the function lifecycle the gateway drives. The gateway sees only this face.
//
// FunctionProvider is shared across the gateway's threads; every method is thread-safe.
// Errors use absl::Status codes that the gateway maps to HTTP:
//   InvalidArgument → 400, NotFound → 404, AlreadyExists → 409, Aborted (in use) → 409,
//   FailedPrecondition → 400,
//   Unavailable → 503 (containerd unreachable) or 502 (registry), DeadlineExceeded → 504,
//   anything else → 500. Messages name the thing and the cause.
//
// LogStream is one /system/logs request's view of a function's captured stdout/stderr.
//
// RoutingTable is the invoke path's view: an immutable snapshot swapped atomically on every
// change, so a lookup never takes a lock held by a slow containerd call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "provider/types.h"

namespace faasd::provider {

// Where one ready replica of a function listens.
struct Endpoint {
  std::string ip;
  int port = 8080;
};

// Immutable map from "name.namespace" to the ready endpoints of that function.
struct RoutingSnapshot {
  // key: "name.namespace"; value: endpoints of ready replicas (may be empty while starting).
  std::map<std::string, std::vector<Endpoint>> functions;
};

class RoutingTable {
 public:
  virtual ~RoutingTable() = default;
  // Current snapshot; never null. Cheap: one atomic shared_ptr load.
  virtual std::shared_ptr<const RoutingSnapshot> Snapshot() const = 0;
  // For a known function with no ready endpoint: starts it when it is scaled to zero (once,
  // however many requests wait) and blocks until it has a ready endpoint, then returns that
  // snapshot; null at `deadline` or when the function is gone.
  virtual std::shared_ptr<const RoutingSnapshot> AwaitReady(const std::string& key,
                                                            absl::Time deadline) = 0;
  // The invoke path could not connect to `endpoint` of function `key`: it leaves routing until
  // the provider has restarted or re-probed it.
  virtual void ReportUnreachable(const std::string& key, const Endpoint& endpoint) = 0;
};

// A /system/logs query, parsed and checked by the gateway.
struct LogRequest {
  std::string name;
  std::string ns;                   // "" = the default namespace
  std::string instance;             // "" = every instance (replica's container id)
  std::optional<absl::Time> since;  // only lines written at or after
  int64_t tail = 0;                 // > 0: only the last `tail` of the stored lines
  bool follow = false;              // then new lines as they are written
};

// One line a replica of the function wrote to stdout or stderr.
struct LogMessage {
  std::string instance;
  absl::Time timestamp;
  std::string text;
};

// A function's log read for one request: the stored lines that match, then (follow) new ones.
// Used from one thread at a time.
class LogStream {
 public:
  virtual ~LogStream() = default;
  // Appends up to `max` messages; appending none means nothing more for now (see Done()).
  virtual absl::Status Read(size_t max, std::vector<LogMessage>* out) = 0;
  // Everything is read and the request does not follow.
  virtual bool Done() const = 0;
  // Following: a descriptor that turns readable when more may have been written (Read() clears
  // it); -1 when there is none: call Read() on a timer.
  virtual int WakeFd() const = 0;
};

class FunctionProvider {
 public:
  virtual ~FunctionProvider() = default;

  // ns "" means the default namespace. InvalidArgument for a bad or unknown namespace.
  virtual absl::StatusOr<std::vector<FunctionStatus>> List(const std::string& ns) = 0;
  virtual absl::StatusOr<FunctionStatus> Get(const std::string& name, const std::string& ns) = 0;
  // CPU (millicores, averaged over up to the last minute) and working-set memory, summed over
  // the function's running replicas (?usage=1). NotFound for an unknown function.
  virtual absl::StatusOr<FunctionUsage> Usage(const std::string& name, const std::string& ns) = 0;
  // Creates a function. AlreadyExists when one of that name is deployed.
  virtual absl::Status Deploy(const FunctionDeployment& d) = 0;
  // Replaces a deployed function. NotFound when absent (faas-cli then POSTs).
  virtual absl::Status Update(const FunctionDeployment& d) = 0;
  // Takes the function out of routing at once; stopping its containers happens in the
  // background. NotFound when absent.
  virtual absl::Status Remove(const std::string& name, const std::string& ns) = 0;
  virtual absl::Status Scale(const std::string& name, const std::string& ns, uint64_t replicas) = 0;
  // Function namespaces: the default one and every containerd namespace labelled openfaas=1.
  virtual absl::StatusOr<std::vector<std::string>> Namespaces() = 0;
  // NotFound when `ns` is not a function namespace.
  virtual absl::StatusOr<FunctionNamespace> GetNamespace(const std::string& ns) = 0;
  // AlreadyExists when present (as a function namespace or not); the openfaas=1 label is added.
  virtual absl::Status CreateNamespace(const FunctionNamespace& ns) = 0;
  // Replaces labels and annotations (openfaas=1 kept). NotFound when absent.
  virtual absl::Status UpdateNamespace(const FunctionNamespace& ns) = 0;
  // NotFound when absent; Aborted naming the functions and secrets still in it;
  // InvalidArgument for the default namespace, which always stays.
  virtual absl::Status DeleteNamespace(const std::string& ns) = 0;

  // Secrets of a namespace (ns "" = default): names only, never values.
  virtual absl::StatusOr<std::vector<std::string>> ListSecrets(const std::string& ns) = 0;
  // AlreadyExists when present; InvalidArgument for a bad name or over kMaxSecretBytes.
  virtual absl::Status CreateSecret(const Secret& secret) = 0;
  // NotFound when absent. Functions naming it see the new value at once.
  virtual absl::Status UpdateSecret(const Secret& secret) = 0;
  // NotFound when absent; Aborted naming the functions that still name it.
  virtual absl::Status DeleteSecret(const std::string& name, const std::string& ns) = 0;

  // The function's captured stdout/stderr, kept across restarts and updates. NotFound for an
  // unknown function.
  virtual absl::StatusOr<std::unique_ptr<LogStream>> Logs(const LogRequest& request) = 0;
  // OK when the backing runtime (containerd) answers.
  virtual absl::Status Healthy() = 0;

  virtual RoutingTable& Routes() = 0;
};

}  // namespace faasd::provider
