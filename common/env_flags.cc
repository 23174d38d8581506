#include "common/env_flags.h"

#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace relay {

std::string EnvNameForFlag(absl::string_view prefix, absl::string_view flag) {
  return absl::StrCat(prefix, absl::AsciiStrToUpper(flag));
}

absl::Status ApplyEnvToFlags(absl::string_view prefix, const std::vector<std::string>& flags) {
  for (const std::string& name : flags) {
    std::string env = EnvNameForFlag(prefix, name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(absl::StrCat("no flag named --", name));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", env, "='", value, "': ", error));
    }
  }
  return absl::OkStatus();
}

}  // namespace relay
