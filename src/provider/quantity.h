// Kubernetes resource quantities as OpenFaaS uses them for limits and requests:
// memory "128Mi", "1G", "512000", "1e3"; cpu "500m", "2", "0.5".
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace faasd::provider {

// Bytes. InvalidArgument for anything that is not a non-negative quantity.
absl::StatusOr<int64_t> ParseMemoryQuantity(std::string_view q);
// Thousandths of a CPU ("500m" -> 500, "2" -> 2000).
absl::StatusOr<int64_t> ParseCpuQuantity(std::string_view q);

}  // namespace faasd::provider
