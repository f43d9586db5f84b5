// Names shared by the ContainerdProvider's files. Private to src/provider/.
#pragma once

#include <string>

#include "provider/types.h"

namespace faasd::provider::internal {

inline constexpr char kFunctionLabel[] = "faasd.function";
inline constexpr char kStateLabel[] = "faasd.state";
inline constexpr char kStateRemoving[] = "removing";
inline constexpr char kReplicasLabel[] = "faasd.replicas";      // wanted count
inline constexpr char kGenerationLabel[] = "faasd.generation";  // deployment time, ns
inline constexpr char kAnnotationPrefix[] = "com.openfaas.annotations.";
inline constexpr char kDeploymentExtension[] = "faasd.deployment";
inline constexpr char kDeploymentTypeUrl[] = "faasd.io/FunctionDeployment";
inline constexpr char kSpecTypeUrl[] = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
inline constexpr char kPullPolicyAnnotation[] = "faasd.pull-policy";
// A containerd namespace with this label ("1" or "true") holds functions.
inline constexpr char kNamespaceLabel[] = "openfaas";
// Namespace annotations are kept as labels under this prefix (containerd has only labels).
inline constexpr char kNamespaceAnnotationPrefix[] = "com.openfaas.annotations.";

// A function's readiness path (annotation or label), as OpenFaaS; "/_/health" otherwise.
inline constexpr char kReadyPathKey[] = "com.openfaas.ready.http.path";

// Routing, locks and waits know a function as "name.namespace", as the invoke path does.
inline std::string FunctionKey(const std::string& name, const std::string& ns) {
  return name + "." + ns;
}

// The path a replica's readiness probe asks ("" = the default /_/health).
std::string ReadyPath(const FunctionDeployment& d);

}  // namespace faasd::provider::internal
