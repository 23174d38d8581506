#include "common/events/cancel_cause.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace relay::events {

std::string CancelCauseName(v1::CancelCause cause) {
  std::string name = v1::CancelCause_Name(cause);
  if (name.empty()) return absl::StrCat(static_cast<int>(cause));
  if (absl::StartsWith(name, "CANCEL_CAUSE_")) name.erase(0, 13);
  return absl::AsciiStrToLower(name);
}

}  // namespace relay::events
