#include "services/shared/field_bounds.h"

#include "absl/strings/str_cat.h"
#include "common/text.h"

namespace relay::services {

absl::Status CheckString(absl::string_view field, absl::string_view value, size_t max_bytes,
                         Presence presence) {
  if (value.empty()) {
    if (presence == Presence::kRequired) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
    }
    return absl::OkStatus();
  }
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", value.size(), " bytes, the limit is ", max_bytes, ": ", Excerpt(value)));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (IsControl(value[i])) {
      const auto c = static_cast<unsigned char>(value[i]);
      return absl::InvalidArgumentError(absl::StrCat(field, " holds a control character (byte ", i,
                                                     " is 0x", absl::Hex(c, absl::kZeroPad2),
                                                     "): ", Excerpt(value)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int)) {
  if (is_valid(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " has unknown value ", value));
}

absl::Status CheckCurrency(absl::string_view field, absl::string_view value) {
  bool ok = value.size() == 3;
  for (char c : value) ok = ok && c >= 'A' && c <= 'Z';
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, " must be an ISO 4217 code of three letters A-Z like USD, got ", Excerpt(value)));
}

}  // namespace relay::services
