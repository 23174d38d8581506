#include "tools/relayctl/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace relay::ctl {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

CommandSpec Spec() {
  return CommandSpec{"order place",
                     "Places an order.",
                     {"CUSTOMER"},
                     {{"item", Flag::kList, "SKU:QTY", "a line"},
                      {"key", Flag::kValue, "KEY", "idempotency key"},
                      {"wait", Flag::kBool, "", "wait for the end"},
                      {"follow", Flag::kBool, "", "follow", 'f'}},
                     ""};
}

TEST(ParseArgs, ReadsFlagsInEveryForm) {
  absl::StatusOr<Args> args = ParseArgs(Spec(), {"c-1", "--item", "KB-1:2", "--item=MS-1:1",
                                                 "--key=k1", "--key", "k2", "--wait", "-f"});
  ASSERT_THAT(args, IsOk());
  EXPECT_THAT(args->GetAll("item"), ElementsAre("KB-1:2", "MS-1:1"));
  EXPECT_EQ(args->Get("key"), "k2");  // The last one wins.
  EXPECT_TRUE(args->Has("wait"));
  EXPECT_TRUE(args->Has("follow"));
  EXPECT_FALSE(args->help());
  EXPECT_EQ(args->Positional(0), "c-1");
  EXPECT_EQ(args->Get("missing", "fallback"), "fallback");
}

TEST(ParseArgs, TakesWordsAfterDoubleDashAndNegativeNumbersAsPositionals) {
  absl::StatusOr<Args> args = ParseArgs(Spec(), {"--", "--odd-name"});
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ(args->Positional(0), "--odd-name");
  args = ParseArgs(Spec(), {"-5"});
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ(args->Positional(0), "-5");
}

TEST(ParseArgs, HelpSkipsTheOtherChecks) {
  absl::StatusOr<Args> args = ParseArgs(Spec(), {"--help"});
  ASSERT_THAT(args, IsOk());
  EXPECT_TRUE(args->help());
  EXPECT_TRUE(ParseArgs(Spec(), {"-h", "extra", "words"})->help());
}

TEST(ParseArgs, NamesWhatIsWrong) {
  EXPECT_THAT(ParseArgs(Spec(), {"c-1", "--nope"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '--nope'")));
  EXPECT_THAT(ParseArgs(Spec(), {"c-1", "-x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '-x'")));
  EXPECT_THAT(ParseArgs(Spec(), {"c-1", "--key"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--key needs a value")));
  EXPECT_THAT(ParseArgs(Spec(), {"c-1", "--wait=yes"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--wait takes no value")));
  EXPECT_THAT(ParseArgs(Spec(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing CUSTOMER")));
  EXPECT_THAT(ParseArgs(Spec(), {"c-1", "c-2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument 'c-2'")));
}

TEST(ParseArgs, TypedFlagsRejectBadValues) {
  absl::StatusOr<Args> args = ParseArgs(Spec(), {"c-1", "--key", "abc"});
  ASSERT_THAT(args, IsOk());
  EXPECT_THAT(DurationFlag(*args, "key", absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--key 'abc'")));
  EXPECT_THAT(IntFlag(*args, "key", 1, 0, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from 0 to 10")));
  EXPECT_THAT(PositiveNumberFlag(*args, "key", 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("positive number")));
  EXPECT_EQ(*DurationFlag(*args, "wait", absl::Seconds(7)), absl::Seconds(7));
  EXPECT_THAT(ParsePositiveDuration("--timeout", "0s"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("positive duration")));
  EXPECT_THAT(ParsePositiveDuration("--timeout", "inf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("positive duration")));
  EXPECT_EQ(*ParsePositiveDuration("--timeout", "250ms"), absl::Milliseconds(250));
  // A deadline of now + 5124095h wrapped into the past.
  EXPECT_THAT(ParsePositiveDuration("--timeout", "5124095h"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("up to 30 days")));
  EXPECT_EQ(*ParsePositiveDuration("--timeout", "720h"), absl::Hours(720));
  EXPECT_THAT(ParseInt("QTY", "-1", 0, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("QTY")));
}

TEST(HelpText, ListsPositionalsAndFlags) {
  std::string help = HelpText(Spec());
  EXPECT_THAT(help, HasSubstr("Usage: relayctl order place CUSTOMER [flags]"));
  EXPECT_THAT(help, HasSubstr("--item SKU:QTY"));
  EXPECT_THAT(help, HasSubstr("(repeatable)"));
  EXPECT_THAT(help, HasSubstr("-f, --follow"));
  EXPECT_THAT(help, HasSubstr("-h, --help"));
}

}  // namespace
}  // namespace relay::ctl
