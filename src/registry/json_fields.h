// Fields of the JSON that registries and token servers send, read so that a field of an
// unexpected type reads as absent. nlohmann's value(key, default) throws type_error when the key
// is present with another type, and an exception out of a parser ends the daemon
// (tests/fuzz/manifest found {"schemaVersion":"x"}). Private to src/registry.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace faasd::registry {

// The string at `key` of object `j`; "" when absent, null or not a string.
inline std::string GetString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A Docker schema1 manifest ("schemaVersion": 1), which we refuse by name.
inline bool IsSchema1(const nlohmann::json& j) {
  auto it = j.find("schemaVersion");
  return it != j.end() && it->is_number() && *it == 1;
}

}  // namespace faasd::registry
