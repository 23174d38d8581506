// Run() as a whole, without servers: verbs, usage errors, help, endpoints.

#include "tools/relayctl/cli.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// An address where nothing listens: connecting fails at once.
constexpr char kNowhere[] = "127.0.0.1:1";

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome RunCli(const std::vector<std::string>& argv, std::map<std::string, std::string> env = {}) {
  std::ostringstream out, err;
  Io io;
  io.out = &out;
  io.err = &err;
  io.getenv = [env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  int code = Run(argv, io);
  return {code, out.str(), err.str()};
}

TEST(Cli, WithoutACommandIsAUsageError) {
  Outcome o = RunCli({});
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, StartsWith("relayctl: missing command\n"));
}

TEST(Cli, HelpListsEveryCommandAndTheExitCodes) {
  Outcome o = RunCli({"--help"});
  EXPECT_EQ(o.code, 0);
  for (const char* verb :
       {"order place", "order get", "order list", "order watch", "order cancel", "stock list",
        "stock set", "account list", "account deposit", "events tail", "trace", "broker topics",
        "broker groups", "health", "load", "compare", "RELAY_ORDER_SYNC_ADDR"}) {
    EXPECT_THAT(o.out, HasSubstr(verb));
  }
  EXPECT_THAT(o.out, HasSubstr("Exit codes: 0 ok"));
  EXPECT_THAT(o.out, HasSubstr("RELAY_BROKER_ADDR"));
}

TEST(Cli, EveryVerbHasHelp) {
  for (const std::vector<std::string>& argv :
       std::vector<std::vector<std::string>>{{"order", "place", "--help"},
                                             {"trace", "-h"},
                                             {"events", "tail", "--help"},
                                             {"--json", "load", "--help"},
                                             {"compare", "--help"}}) {
    Outcome o = RunCli(argv);
    EXPECT_EQ(o.code, 0) << argv[0];
    EXPECT_THAT(o.out, StartsWith("Usage: relayctl ")) << argv[0];
    EXPECT_THAT(o.out, HasSubstr("--timeout DURATION")) << argv[0];
  }
  Outcome group = RunCli({"order", "--help"});
  EXPECT_EQ(group.code, 0);
  EXPECT_THAT(group.out, HasSubstr("order watch"));
  EXPECT_THAT(group.out, Not(HasSubstr("stock list")));
}

TEST(Cli, UnknownCommandsAndVerbsAreUsageErrors) {
  Outcome o = RunCli({"fly"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "relayctl: unknown command 'fly' (see relayctl --help)\n");
  o = RunCli({"order", "fly"});
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, HasSubstr("order: unknown verb 'fly'"));
  o = RunCli({"order"});
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, HasSubstr("order: missing verb"));
}

TEST(Cli, BadArgumentsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"order", "get"},                                             // Missing ORDER_ID.
      {"order", "get", "o-1", "o-2"},                               // One too many.
      {"order", "place", "--item", "KB-1:2"},                       // No --customer.
      {"order", "place", "--customer", "c-1"},                      // No --item.
      {"order", "place", "--customer", "c-1", "--item", "KB-1"},    // No quantity.
      {"order", "place", "--customer", "c-1", "--item", "KB-1:0"},  // Quantity < 1.
      {"order", "list", "--status", "lost"},
      {"account", "deposit", "c-1", "1.234"},  // Too many decimals.
      {"account", "deposit", "c-1", "abc"},
      {"account", "deposit", "c-1", "0"},  // Not positive.
      {"stock", "set", "KB-1", "-3"},
      {"stock", "set", "KB-1", "3", "--price", "1.999"},
      {"events", "tail", "--limit", "0"},
      {"load", "--rate", "0", "--duration", "1s"},
      {"load", "--rate", "5"},
      {"compare", "--rate", "0"},
      {"compare", "--rate", "fast"},
      {"compare", "--duration", "soon"},
      {"compare", "--duration", "-1s"},
      {"compare", "--grace", "0s"},
      {"compare", "--order", "127.0.0.1:9", "--sync-order", "127.0.0.1:9"},
      {"health", "--service", "database"},
      {"broker", "topics", "--timeout", "soon"},
      {"broker", "topics", "--bogus"},
      {"broker", "topics", "--timeout", "5124095h"},  // a deadline that wrapped into the past
      // A megabyte of input, or a newline in it, is not echoed back.
      {"order", "place", "--customer", "c-1", "--item", std::string(1 << 20, 'x')},
      {"order", "list", "--status", std::string(1 << 20, 'x')},
      {"broker", "topics", "--timeout", std::string(1 << 20, 'x')},
      {"order", std::string(1 << 20, 'x')},
      {std::string(1 << 20, 'x')},
      {"order", "get", "o-1", "--bogus\nline"},
      // Not UTF-8 (é from a Latin-1 terminal): the service would refuse the
      // whole request with an empty error.
      {"order", "get", "o-\xe9"},
      {"order", "place", "--customer", "c-\xe9", "--item", "KB-1:1"},
      {"account", "deposit", "c-1", "1\n2"},
  };
  for (const std::vector<std::string>& argv : cases) {
    Outcome o = RunCli(argv);
    EXPECT_EQ(o.code, 2) << absl::StrJoin(argv, " ").substr(0, 60) << ": " << o.err.substr(0, 200);
    EXPECT_THAT(o.err, StartsWith("relayctl: ")) << o.err.substr(0, 200);
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err.substr(0, 200);
    EXPECT_LT(o.err.size(), 300u) << o.err.substr(0, 200);
    EXPECT_EQ(o.out, "");
  }
}

// A file path is bytes, not a proto string: one that is not UTF-8 is looked
// for as it is (and here not found), not refused as text.
TEST(Cli, TlsPathsNeedNotBeUtf8) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{"broker", "topics", "--tls-ca", "/nonexistent/\xe9.pem"},
        std::vector<std::string>{"broker", "topics", "--tls-ca=/nonexistent/\xe9.pem"}}) {
    Outcome o = RunCli(argv);
    EXPECT_NE(o.code, 0);
    EXPECT_THAT(o.err, Not(HasSubstr("UTF-8")));
  }
  Outcome o = RunCli({"order", "get", "o-\xe9"});
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, HasSubstr("argument 1 after the command is not UTF-8"));
}

TEST(Cli, UnreachableServiceExitsFourNamingTheAddress) {
  Outcome o = RunCli({"order", "get", "o-1", "--order", kNowhere, "--timeout", "2s"});
  EXPECT_EQ(o.code, 4);
  EXPECT_THAT(o.err, StartsWith("relayctl: get order 'o-1': cannot reach 127.0.0.1:1: "));
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

TEST(Cli, CompareWithoutASyncOrderServiceSaysHowToStartOne) {
  Outcome o = RunCli({"compare", "--timeout", "2s"}, {{"RELAY_ORDER_SYNC_ADDR", kNowhere}});
  EXPECT_EQ(o.code, 4);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err,
            "relayctl: compare: no sync order-service at 127.0.0.1:1: start one with "
            "`scripts/compose --profile compare up -d order-service-sync`, or pass "
            "--sync-order HOST:PORT\n");
}

TEST(Cli, EndpointsComeFromFlagsThenEnvironment) {
  // The environment names the broker when no flag does...
  Outcome o = RunCli({"health", "--service", "broker", "--timeout", "2s"},
                     {{"RELAY_BROKER_ADDR", kNowhere}});
  EXPECT_EQ(o.code, 4);
  EXPECT_THAT(o.out, HasSubstr(kNowhere));
  EXPECT_THAT(o.out, HasSubstr("UNREACHABLE"));
  EXPECT_THAT(o.err, HasSubstr("relayctl: health: not serving: broker"));
  // ...and a flag wins over it, even before the command.
  o = RunCli({"--broker", "127.0.0.1:2", "health", "--service", "broker", "--timeout", "2s"},
             {{"RELAY_BROKER_ADDR", kNowhere}});
  EXPECT_EQ(o.code, 4);
  EXPECT_THAT(o.out, HasSubstr("127.0.0.1:2"));
  EXPECT_THAT(o.out, Not(HasSubstr(kNowhere)));
}

TEST(Cli, HealthWithoutServiceChecksAllFour) {
  Outcome o = RunCli({"health", "--json", "--timeout", "2s"}, {{"RELAY_BROKER_ADDR", kNowhere},
                                                               {"RELAY_ORDER_ADDR", kNowhere},
                                                               {"RELAY_INVENTORY_ADDR", kNowhere},
                                                               {"RELAY_PAYMENT_ADDR", kNowhere}});
  EXPECT_EQ(o.code, 4);
  for (const char* name : {"\"broker\"", "\"order\"", "\"inventory\"", "\"payment\""}) {
    EXPECT_THAT(o.out, HasSubstr(name));
  }
}

}  // namespace
}  // namespace relay::ctl
