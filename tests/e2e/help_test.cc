// Every Relay binary that reads Abseil flags lists them with --help, as the
// README promises (issue 7, item 10: it printed "No flags matched.").

#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace relay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Binary {
  std::string path;
  std::string name;
  std::string env_prefix;
  std::vector<std::string> flags;  // some of its own flags
};

void PrintTo(const Binary& b, std::ostream* os) { *os << b.path; }

class HelpTest : public ::testing::TestWithParam<Binary> {};

TEST_P(HelpTest, ListsTheBinarysOwnFlagsAndTheirEnvironmentPrefix) {
  const Binary& binary = GetParam();
  relay::testing::TempDir dir;
  const std::string log_path = dir.Join("help.txt");
  relay::testing::Subprocess proc;
  ASSERT_TRUE(proc.Start({binary.path, "--help"}, log_path));
  int status = proc.Stop(0, absl::Seconds(20));  // no signal: it exits by itself
  ASSERT_TRUE(WIFEXITED(status)) << status;
  std::ifstream in(log_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string help = text.str();
  EXPECT_THAT(help, Not(HasSubstr("No flags matched")));
  for (const std::string& flag : binary.flags) {
    EXPECT_THAT(help, HasSubstr(absl::StrCat("--", flag, " ("))) << help;
  }
  EXPECT_THAT(help, HasSubstr(binary.env_prefix)) << help;
  EXPECT_THAT(help, Not(HasSubstr(": " + binary.name + ":"))) << "name printed twice: " << help;
  // Only its own: gRPC's and Abseil's flags stay in --helpfull.
  EXPECT_THAT(help, Not(HasSubstr("--flagfile"))) << help;
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, HelpTest,
    ::testing::Values(
        Binary{RELAY_BROKER_BIN,
               "relay-broker",
               "RELAY_BROKER_",
               {"listen", "data_dir", "storage", "nats", "replicas", "max_event_bytes",
                "shutdown_grace", "log_format"}},
        Binary{RELAY_ORDER_BIN,
               "order-service",
               "RELAY_ORDER_",
               {"listen", "broker", "db", "log_format"}},
        Binary{RELAY_INVENTORY_BIN,
               "inventory-service",
               "RELAY_INVENTORY_",
               {"listen", "broker", "db", "shutdown_grace", "log_format"}},
        Binary{RELAY_PAYMENT_BIN,
               "payment-service",
               "RELAY_PAYMENT_",
               {"listen", "broker", "db", "decline_rate", "shutdown_grace", "log_format"}}));

}  // namespace
}  // namespace relay
