#ifndef RELAY_TOOLS_RELAYCTL_ARGS_H_
#define RELAY_TOOLS_RELAYCTL_ARGS_H_

// Command-line parsing for one relayctl verb: flags declared up front,
// positional arguments by name, a --help text generated from the same
// declaration. Every mistake is an INVALID_ARGUMENT whose message names the
// offending argument (relayctl turns it into exit code 2).
//
//   CommandSpec spec{"order get", "Shows one order.", {"ORDER_ID"}, {}};
//   absl::StatusOr<Args> args = ParseArgs(spec, {"o-1", "--json"});
//
// Flags: `--name value`, `--name=value`, `-x` for a one-letter alias,
// `--` ends the flags. A value flag given twice keeps the last value unless
// it is a list flag, which keeps them all.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace relay::ctl {

struct Flag {
  enum Kind { kBool, kValue, kList };
  std::string name;  // "customer" for --customer.
  Kind kind = kValue;
  std::string value_name;  // Shown in help: --customer C.
  std::string help;
  char short_name = 0;  // 'f' for -f; 0 for none.
};

struct CommandSpec {
  std::string path;                      // "order place".
  std::string summary;                   // One line.
  std::vector<std::string> positionals;  // Required, in order, e.g. {"ORDER_ID"}.
  std::vector<Flag> flags;
  std::string details;  // More help text, may be empty.
};

// The parsed command line of one verb. Copyable.
class Args {
 public:
  // Whether --help (or -h) was given; nothing else is checked then.
  bool help() const { return help_; }
  // Whether flag `name` was given.
  bool Has(absl::string_view name) const;
  // The last value of flag `name`, or `fallback` when not given.
  std::string Get(absl::string_view name, absl::string_view fallback = "") const;
  // Every value of a list flag, in order.
  std::vector<std::string> GetAll(absl::string_view name) const;
  // The positional argument at `index` (in the order the spec declares them).
  const std::string& Positional(size_t index) const { return positionals_[index]; }
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  friend absl::StatusOr<Args> ParseArgs(const CommandSpec&, const std::vector<std::string>&);
  bool help_ = false;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positionals_;
};

// Parses `argv` (the words after the verb) against `spec`.
absl::StatusOr<Args> ParseArgs(const CommandSpec& spec, const std::vector<std::string>& argv);

// The --help text of `spec`, ending in a newline.
std::string HelpText(const CommandSpec& spec);

// Typed values of flags, each INVALID_ARGUMENT naming the flag when the text
// does not parse. `fallback` is used when the flag was not given.

// A positive duration such as "5s", "250ms", "1m30s".
absl::StatusOr<absl::Duration> DurationFlag(const Args& args, absl::string_view name,
                                            absl::Duration fallback);
// An integer within [min, max].
absl::StatusOr<int64_t> IntFlag(const Args& args, absl::string_view name, int64_t fallback,
                                int64_t min, int64_t max);
// A positive decimal number such as "50" or "0.5".
absl::StatusOr<double> PositiveNumberFlag(const Args& args, absl::string_view name,
                                          double fallback);

// The longest duration a flag takes (a timeout, a load run).
inline constexpr absl::Duration kMaxDuration = absl::Hours(24 * 30);

// Parses a positive duration up to kMaxDuration; `what` names it in the
// error.
absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view what,
                                                     absl::string_view text);
// Parses an integer within [min, max]; `what` names it in the error.
absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text, int64_t min,
                                 int64_t max);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_ARGS_H_
