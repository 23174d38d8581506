#include "tools/relayctl/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text.h"

namespace relay::ctl {
namespace {

const Flag* FindFlag(const CommandSpec& spec, absl::string_view name) {
  for (const Flag& f : spec.flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const Flag* FindShortFlag(const CommandSpec& spec, char c) {
  for (const Flag& f : spec.flags) {
    if (f.short_name != 0 && f.short_name == c) return &f;
  }
  return nullptr;
}

std::string FlagUsage(const Flag& f) {
  std::string text = f.short_name != 0 ? absl::StrCat("-", std::string(1, f.short_name), ", ")
                                       : std::string("    ");
  absl::StrAppend(&text, "--", f.name);
  if (f.kind != Flag::kBool)
    absl::StrAppend(&text, " ", f.value_name.empty() ? "VALUE" : f.value_name);
  return text;
}

}  // namespace

bool Args::Has(absl::string_view name) const { return values_.find(name) != values_.end(); }

std::string Args::Get(absl::string_view name, absl::string_view fallback) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

std::vector<std::string> Args::GetAll(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  return it->second;
}

absl::StatusOr<Args> ParseArgs(const CommandSpec& spec, const std::vector<std::string>& argv) {
  auto not_utf8 = [](size_t i) {
    return absl::InvalidArgumentError(absl::StrCat(
        "argument ", i + 1, " after the command is not UTF-8 (a terminal in another encoding?)"));
  };
  Args args;
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    // Ids, names and reasons go into proto3 strings, which must be UTF-8:
    // the service would refuse the whole request with an empty error. The
    // text is not quoted: its bytes would not print either.
    if (!IsUtf8(word) && !absl::StartsWith(word, "--tls-")) return not_utf8(i);
    if (flags_done || word == "-" || !absl::StartsWith(word, "-")) {
      args.positionals_.push_back(word);
      continue;
    }
    if (word == "--") {
      flags_done = true;
      continue;
    }
    if (word == "--help" || word == "-h") {
      args.help_ = true;
      continue;
    }
    const Flag* flag = nullptr;
    std::string name;
    std::optional<std::string> inline_value;
    if (absl::StartsWith(word, "--")) {
      name = word.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      flag = FindFlag(spec, name);
    } else if (word.size() == 2) {
      flag = FindShortFlag(spec, word[1]);
      if (flag != nullptr) name = flag->name;
    }
    if (flag == nullptr) {
      // A negative number is a positional (e.g. a quantity), not a flag.
      double unused;
      if (absl::SimpleAtod(word, &unused)) {
        args.positionals_.push_back(word);
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", Excerpt(word)));
    }
    std::vector<std::string>& values = args.values_[flag->name];
    if (flag->kind == Flag::kBool) {
      if (inline_value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", flag->name, " takes no value"));
      }
      values.push_back("true");
      continue;
    }
    std::string value;
    if (inline_value.has_value()) {
      value = *inline_value;
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
      // File paths (--tls-*) are bytes, not proto strings.
      if (!IsUtf8(value) && !absl::StartsWith(flag->name, "tls-")) return not_utf8(i);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", flag->name, " needs a value (",
                       flag->value_name.empty() ? "VALUE" : flag->value_name, ")"));
    }
    if (flag->kind == Flag::kValue) values.clear();
    values.push_back(std::move(value));
  }
  if (args.help_) return args;
  if (args.positionals_.size() < spec.positionals.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing ", spec.positionals[args.positionals_.size()]));
  }
  if (args.positionals_.size() > spec.positionals.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument ", Excerpt(args.positionals_[spec.positionals.size()])));
  }
  return args;
}

std::string HelpText(const CommandSpec& spec) {
  std::string text = absl::StrCat("Usage: relayctl ", spec.path);
  for (const std::string& p : spec.positionals) absl::StrAppend(&text, " ", p);
  absl::StrAppend(&text, " [flags]\n\n", spec.summary, "\n");
  if (!spec.details.empty()) absl::StrAppend(&text, "\n", spec.details, "\n");
  std::vector<Flag> flags = spec.flags;
  flags.push_back({"help", Flag::kBool, "", "show this help", 'h'});
  absl::StrAppend(&text, "\nFlags:\n");
  size_t width = 0;
  for (const Flag& f : flags) width = std::max(width, FlagUsage(f).size());
  for (const Flag& f : flags) {
    std::string usage = FlagUsage(f);
    absl::StrAppend(&text, "  ", usage, std::string(width - usage.size() + 2, ' '), f.help,
                    f.kind == Flag::kList ? " (repeatable)" : "", "\n");
  }
  return text;
}

absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view what,
                                                     absl::string_view text) {
  absl::Duration d;
  // Deadlines are the clock plus this in nanoseconds: a bound keeps them
  // from wrapping (past ~292 years) into the past.
  if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration() || d > kMaxDuration) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Excerpt(text),
                     ": expected a positive duration up to 30 days, such as 5s or 250ms"));
  }
  return d;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text, int64_t min,
                                 int64_t max) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Excerpt(text), ": expected an integer from ", min, " to ", max));
  }
  return value;
}

absl::StatusOr<absl::Duration> DurationFlag(const Args& args, absl::string_view name,
                                            absl::Duration fallback) {
  if (!args.Has(name)) return fallback;
  return ParsePositiveDuration(absl::StrCat("--", name), args.Get(name));
}

absl::StatusOr<int64_t> IntFlag(const Args& args, absl::string_view name, int64_t fallback,
                                int64_t min, int64_t max) {
  if (!args.Has(name)) return fallback;
  return ParseInt(absl::StrCat("--", name), args.Get(name), min, max);
}

absl::StatusOr<double> PositiveNumberFlag(const Args& args, absl::string_view name,
                                          double fallback) {
  if (!args.Has(name)) return fallback;
  double value = 0;
  std::string text = args.Get(name);
  // SimpleAtod accepts "inf" and "nan"; a rate must be a finite number.
  if (!absl::SimpleAtod(text, &value) || !(value > 0) || value > 1e9) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " ", Excerpt(text), ": expected a positive number"));
  }
  return value;
}

}  // namespace relay::ctl
