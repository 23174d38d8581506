#include "tools/relayctl/cli.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_channel.h"
#include "common/text.h"
#include "common/tls.h"
#include "tools/relayctl/commands.h"

namespace relay::ctl {
namespace {

constexpr absl::Duration kDefaultTimeout = absl::Seconds(5);

struct EndpointFlag {
  const char* flag;
  const char* env;
  std::string Endpoints::*field;
  const char* service;
};

const EndpointFlag kEndpointFlags[] = {
    {"broker", "RELAY_BROKER_ADDR", &Endpoints::broker, "relay-broker"},
    {"order", "RELAY_ORDER_ADDR", &Endpoints::order, "order-service"},
    {"inventory", "RELAY_INVENTORY_ADDR", &Endpoints::inventory, "inventory-service"},
    {"payment", "RELAY_PAYMENT_ADDR", &Endpoints::payment, "payment-service"},
    {"sync-order", "RELAY_ORDER_SYNC_ADDR", &Endpoints::sync_order,
     "compare's order-service --flow=sync"},
};

// TLS to every service (docs/SECURITY.md): plaintext unless given.
struct TlsFlag {
  const char* flag;
  const char* env;
  std::string TlsFiles::*field;
  const char* help;
};

const TlsFlag kTlsFlags[] = {
    {"tls-cert", "RELAY_TLS_CERT", &TlsFiles::cert,
     "PEM client certificate, and its key unless --tls-key names it (mutual TLS)"},
    {"tls-key", "RELAY_TLS_KEY", &TlsFiles::key, "PEM private key of --tls-cert"},
    {"tls-ca", "RELAY_TLS_CA", &TlsFiles::ca, "PEM CA that the services' certificates chain to"},
};

std::vector<Flag> GlobalFlags() {
  std::vector<Flag> flags;
  const Endpoints defaults;
  for (const EndpointFlag& e : kEndpointFlags) {
    flags.push_back(
        {e.flag, Flag::kValue, "HOST:PORT",
         absl::StrCat(e.service, " address (env ", e.env, ", default ", defaults.*(e.field), ")")});
  }
  for (const TlsFlag& t : kTlsFlags) {
    flags.push_back({t.flag, Flag::kValue, "FILE", absl::StrCat(t.help, " (env ", t.env, ")")});
  }
  flags.push_back({"timeout", Flag::kValue, "DURATION", "deadline of each call (default 5s)"});
  flags.push_back({"json", Flag::kBool, "", "print JSON instead of tables"});
  return flags;
}

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto list : {OrderCommands, StockCommands, AccountCommands, EventsCommands, TraceCommands,
                    BrokerCommands, HealthCommands, LoadCommands, CompareCommands}) {
    for (Command& c : list()) all.push_back(std::move(c));
  }
  return all;
}

constexpr char kExitCodesHelp[] =
    "Exit codes: 0 ok, 1 other error, 2 usage error, 3 not found, 4 unavailable\n"
    "(cannot reach the service or no answer within --timeout), 5 the order ended\n"
    "CANCELLED (order place --wait, order watch).\n";

// Help for everything, or for the commands under `group` when not empty.
std::string Overview(const std::vector<Command>& commands, const std::string& group) {
  std::string text =
      group.empty() ? "Usage: relayctl COMMAND [args] [flags]\n\n"
                      "relayctl drives Relay: orders, stock, accounts, the "
                      "event broker.\n\nCommands:\n"
                    : absl::StrCat("Usage: relayctl ", group, " VERB [args] [flags]\n\nVerbs:\n");
  size_t width = 0;
  for (const Command& c : commands) width = std::max(width, c.spec.path.size());
  for (const Command& c : commands) {
    if (!group.empty() && !absl::StartsWith(c.spec.path, absl::StrCat(group, " "))) continue;
    absl::StrAppend(&text, "  ", c.spec.path, std::string(width - c.spec.path.size() + 2, ' '),
                    c.spec.summary, "\n");
  }
  absl::StrAppend(&text, "\nGlobal flags (any command):\n");
  std::vector<std::pair<std::string, std::string>> flags;
  size_t flag_width = 0;
  for (const Flag& f : GlobalFlags()) {
    flags.emplace_back(absl::StrCat("--", f.name, f.kind == Flag::kBool ? "" : " ", f.value_name),
                       f.help);
    flag_width = std::max(flag_width, flags.back().first.size());
  }
  for (const auto& [usage, help] : flags) {
    absl::StrAppend(&text, "  ", usage, std::string(flag_width - usage.size() + 2, ' '), help,
                    "\n");
  }
  absl::StrAppend(&text, "\nRun 'relayctl COMMAND --help' for a command's flags.\n",
                  kExitCodesHelp);
  return text;
}

bool IsGlobalValueFlag(const std::string& word) {
  if (!absl::StartsWith(word, "--") || absl::StrContains(word, "=")) return false;
  for (const Flag& f : GlobalFlags()) {
    if (f.kind == Flag::kValue && word == absl::StrCat("--", f.name)) return true;
  }
  return false;
}

}  // namespace

int Run(const std::vector<std::string>& argv, const Io& io) {
  std::ostream& out = *io.out;
  std::ostream& err = *io.err;
  const std::vector<Command> commands = AllCommands();

  // The command words are the first words that are not flags (or values of
  // global flags, which may come before the command).
  std::vector<size_t> word_index;
  bool help = false;
  for (size_t i = 0; i < argv.size() && word_index.size() < 2; ++i) {
    if (argv[i] == "--") break;
    if (argv[i] == "--help" || argv[i] == "-h") help = true;
    if (IsGlobalValueFlag(argv[i])) {
      ++i;
      continue;
    }
    if (!absl::StartsWith(argv[i], "-")) word_index.push_back(i);
  }
  if (word_index.empty()) {
    if (help) {
      out << Overview(commands, "");
      return kExitOk;
    }
    err << "relayctl: missing command\n" << Overview(commands, "");
    return kExitUsage;
  }
  const std::string first = argv[word_index[0]];
  const Command* command = nullptr;
  size_t words = 0;
  for (const Command& c : commands) {
    if (word_index.size() > 1 && c.spec.path == absl::StrCat(first, " ", argv[word_index[1]])) {
      command = &c;
      words = 2;
    } else if (command == nullptr && c.spec.path == first) {
      command = &c;
      words = 1;
    }
  }
  if (command == nullptr) {
    bool is_group = false;
    for (const Command& c : commands) {
      if (absl::StartsWith(c.spec.path, absl::StrCat(first, " "))) is_group = true;
    }
    if (is_group && help) {
      out << Overview(commands, first);
      return kExitOk;
    }
    if (is_group) {
      err << "relayctl: " << first << ": "
          << (word_index.size() > 1 ? absl::StrCat("unknown verb ", Excerpt(argv[word_index[1]]))
                                    : std::string("missing verb"))
          << " (see relayctl " << first << " --help)\n";
    } else {
      err << "relayctl: unknown command " << Excerpt(first) << " (see relayctl --help)\n";
    }
    return kExitUsage;
  }

  std::vector<std::string> rest;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i == word_index[0] || (words == 2 && i == word_index[1])) continue;
    rest.push_back(argv[i]);
  }
  CommandSpec spec = command->spec;
  for (Flag& f : GlobalFlags()) spec.flags.push_back(std::move(f));
  auto usage_error = [&](const absl::Status& s) {
    err << "relayctl: " << spec.path << ": " << s.message() << " (see relayctl " << spec.path
        << " --help)\n";
    return kExitUsage;
  };
  absl::StatusOr<Args> args = ParseArgs(spec, rest);
  if (!args.ok()) return usage_error(args.status());
  if (args->help()) {
    out << HelpText(spec);
    return kExitOk;
  }

  Endpoints endpoints;
  for (const EndpointFlag& e : kEndpointFlags) {
    const char* env = io.getenv ? io.getenv(e.env) : nullptr;
    if (args->Has(e.flag)) {
      endpoints.*(e.field) = args->Get(e.flag);
    } else if (env != nullptr && *env != '\0') {
      endpoints.*(e.field) = env;
    }
    if ((endpoints.*(e.field)).empty()) {
      return usage_error(absl::InvalidArgumentError(absl::StrCat("--", e.flag, " is empty")));
    }
    if (absl::StatusOr<std::shared_ptr<ChannelSet>> set = ChannelSet::Parse(endpoints.*(e.field));
        !set.ok()) {
      return usage_error(
          absl::InvalidArgumentError(absl::StrCat("--", e.flag, ": ", set.status().message())));
    }
  }
  for (const TlsFlag& t : kTlsFlags) {
    const char* env = io.getenv ? io.getenv(t.env) : nullptr;
    if (args->Has(t.flag)) {
      endpoints.tls.*(t.field) = args->Get(t.flag);
    } else if (env != nullptr) {
      endpoints.tls.*(t.field) = env;
    }
  }
  if (absl::StatusOr<TlsIdentity> tls = CheckTlsFiles(endpoints.tls); !tls.ok()) {
    return usage_error(tls.status());
  }
  absl::StatusOr<absl::Duration> timeout = DurationFlag(*args, "timeout", kDefaultTimeout);
  if (!timeout.ok()) return usage_error(timeout.status());

  Context ctx(io, endpoints, *timeout, args->Has("json"));
  return command->run(ctx, *args);
}

}  // namespace relay::ctl
