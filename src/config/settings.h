// The settings of `faasd up`, from the config file and the command line.
//
// Every setting is a flag of `faasd up` (--name=value or --name value) and a key of the config
// file (/etc/faasd/faasd.conf unless --config=PATH), with the same name. The file holds
// `key = value` lines: blanks around `=` and the value are ignored, `#` starts a comment at the
// start of a line or after a blank, a key may appear once (the repeatable ones, such as
// nameserver and insecure-registry, once per value). A flag replaces every value the file gave
// its key. Values are checked here, for both sources, so an error names the key and where it
// came from ("/etc/faasd/faasd.conf:7: stop-grace = soon: not a whole number of seconds").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace faasd::config {

inline constexpr char kDefaultConfigPath[] = "/etc/faasd/faasd.conf";

enum class Kind {
  kText,      // any non-empty value
  kSeconds,   // a whole number >= 0
  kCount,     // a whole number >= 0
  kPositive,  // a whole number > 0
  kChoice,    // one of Key::choices
  kHostPort,  // HOST:PORT, PORT 0-65535, HOST an IP (IPv6 in brackets)
  kPath,      // an absolute path
};

struct Key {
  const char* name;
  Kind kind;
  const char* default_value;  // as `faasd config` shows it; "" when derived or unset
  bool repeatable = false;
  std::vector<const char*> choices = {};
  const char* bare_value = nullptr;  // the value of the flag given alone (--autoscale-all)
  bool may_be_empty = false;         // "" is a value (--nats-url= turns async off)
};

// Every key `faasd up` knows, in the order `faasd config` prints them.
absl::Span<const Key> Keys();
// nullptr when `name` is not a key.
const Key* FindKey(absl::string_view name);

struct Settings {
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, std::string> origins;  // key -> "--flag" or "PATH:LINE"

  // The last value of `name`, or `def` when none was given.
  std::string Get(const std::string& name, const std::string& def) const;
  // Every value of `name` in order (repeatable keys).
  std::vector<std::string> All(const std::string& name) const;
};

// Checks one value of `key`; the error says why, without naming the key (callers add where).
absl::Status CheckValue(const Key& key, absl::string_view value);

// Parses a config file's text; `path` only names it in errors.
absl::StatusOr<Settings> ParseConfigText(absl::string_view text, absl::string_view path);

// The flags args[first..] (--name=value or --name value). --config=PATH is taken out into
// *config_path (empty when not given).
absl::StatusOr<Settings> ParseFlags(absl::Span<char* const> args, std::string* config_path);

// The file's settings with the flags' keys replaced by the flags' values.
Settings Merge(Settings file, const Settings& flags);

// Reads and parses the config file: `path` if given (it must exist), else kDefaultConfigPath
// if it exists, else no settings.
absl::StatusOr<Settings> LoadConfigFile(const std::string& path);

// The flags and the file merged: what `faasd up` runs with.
absl::StatusOr<Settings> Load(absl::Span<char* const> args);

// `faasd config`: every key with its effective value and where it came from, as a config file
// would say it. Holds no secret: the basic-auth password lives in the state dir, not here.
std::string Render(const Settings& settings);

}  // namespace faasd::config
