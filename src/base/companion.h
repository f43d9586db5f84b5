// Finding the programs installed with faasd (fwatchdog, faasd-logger) from where the running
// binary is, so an install under any prefix and a build tree both work without flags.
#pragma once

#include <string>

namespace faasd {

// The absolute, resolved path of the first executable among: <dir>/<name>, <dir>/../bin/<name>,
// <dir>/../sbin/<name>, <dir>/<build_subdir>/<name> (where <dir> holds the running executable)
// and /usr/lib/faasd/<name>; "" when there is none.
std::string FindCompanionBinary(const std::string& name, const std::string& build_subdir);

}  // namespace faasd
