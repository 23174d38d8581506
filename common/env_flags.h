#ifndef RELAY_COMMON_ENV_FLAGS_H_
#define RELAY_COMMON_ENV_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace relay {

// Gives every named flag an environment-variable equivalent:
// flag `data_dir` with prefix "RELAY_BROKER_" reads RELAY_BROKER_DATA_DIR.
// Call before absl::ParseCommandLine, so a flag on the command line still
// wins over the environment. Returns INVALID_ARGUMENT naming the variable
// when a value does not parse.
absl::Status ApplyEnvToFlags(absl::string_view prefix, const std::vector<std::string>& flags);

// The environment variable name of `flag` under `prefix`.
std::string EnvNameForFlag(absl::string_view prefix, absl::string_view flag);

}  // namespace relay

#endif  // RELAY_COMMON_ENV_FLAGS_H_
