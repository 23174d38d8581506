#include "broker/policy.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::broker {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Policy> MustParse(const std::string& text) {
  absl::StatusOr<std::shared_ptr<const Policy>> policy = Policy::Parse(text, "p.conf");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *policy : nullptr;
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<std::shared_ptr<const Policy>> policy = Policy::Parse(text, "p.conf");
  EXPECT_FALSE(policy.ok()) << text;
  if (policy.ok()) return "";
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(policy.status().message().size(), 400u);
  return std::string(policy.status().message());
}

TEST(PolicyTest, RulesCommentsAndPatterns) {
  auto p = MustParse(
      "# comment\n"
      "\n"
      "allow svc-a publish orders,audit.*   # trailing comment\n"
      "allow svc-a\tsubscribe   inventory group svc-a,svc-a-*\n"
      "allow ops admin\n"
      "allow any subscribe * group *\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->rule_count(), 4u);
  EXPECT_TRUE(p->MayPublish("svc-a", "orders").ok());
  EXPECT_TRUE(p->MayPublish("svc-a", "audit.x").ok());
  EXPECT_FALSE(p->MayPublish("svc-a", "audit").ok());  // `audit.*` is a prefix of "audit."
  EXPECT_FALSE(p->MayPublish("svc-a", "order").ok());
  EXPECT_TRUE(p->MaySubscribe("svc-a", "inventory", "svc-a").ok());
  EXPECT_TRUE(p->MaySubscribe("svc-a", "inventory", "svc-a-2").ok());
  EXPECT_FALSE(p->MaySubscribe("svc-a", "inventory", "svc-b").ok());
  EXPECT_FALSE(p->MaySubscribe("svc-a", "orders", "svc-a").ok());
  EXPECT_TRUE(p->MaySubscribe("any", "x.dlq", "g").ok());
  EXPECT_TRUE(p->MayAdmin("ops", "Read").ok());
  EXPECT_FALSE(p->MayAdmin("svc-a", "Read").ok());
  // Rights do not cross actions: publishing is not subscribing.
  EXPECT_FALSE(p->MayPublish("any", "orders").ok());
  EXPECT_FALSE(p->MayPublish("ops", "orders").ok());
}

TEST(PolicyTest, DenialsNameTheIdentityWhatAndWhatIsAllowed) {
  auto p = MustParse("allow svc-a publish orders\nallow svc-a publish audit\n");
  absl::Status s = p->MayPublish("svc-a", "payments");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "relay://svc-a may not publish to topic 'payments': policy p.conf lets it publish "
            "only to orders (line 1); audit (line 2)");
  EXPECT_EQ(p->MaySubscribe("svc-b", "orders", "g").message(),
            "relay://svc-b may not subscribe to topic 'orders' as group 'g': policy p.conf has "
            "no `subscribe` rule for it");
  EXPECT_THAT(p->MayPublish("", "orders").message(),
              HasSubstr("the caller has no relay:// identity"));
  // A long topic is quoted, not echoed.
  EXPECT_LT(p->MayPublish("svc-a", std::string(100000, 'x')).message().size(), 300u);
}

TEST(PolicyTest, BadLinesAreRefusedWithTheirLineNumber) {
  EXPECT_EQ(ParseError("allow a publish x\nallow a publsh x\n"),
            "p.conf:2: unknown action 'publsh' (publish, subscribe or admin)");
  EXPECT_THAT(ParseError("permit a publish x\n"), HasSubstr("p.conf:1: expected `allow"));
  EXPECT_THAT(ParseError("allow a publish\n"), HasSubstr("p.conf:1: publish: expected"));
  EXPECT_THAT(ParseError("allow a publish x y\n"), HasSubstr("p.conf:1: publish: expected"));
  EXPECT_THAT(ParseError("allow a subscribe x\n"), HasSubstr("p.conf:1: subscribe: expected"));
  EXPECT_THAT(ParseError("allow a subscribe x as g\n"), HasSubstr("subscribe: expected"));
  EXPECT_THAT(ParseError("allow a admin now\n"), HasSubstr("admin takes nothing more"));
  EXPECT_THAT(ParseError("allow A publish x\n"), HasSubstr("identity 'A' may hold only"));
  EXPECT_THAT(ParseError("allow a publish Orders\n"), HasSubstr("p.conf:1: topic"));
  EXPECT_THAT(ParseError("allow a publish x,,y\n"), HasSubstr("p.conf:1: topic"));
  EXPECT_THAT(ParseError("allow a subscribe x group G\n"), HasSubstr("p.conf:1: group"));
  std::string error = ParseError("allow a publish " + std::string(5000, 'x') + "\n");
  EXPECT_THAT(error, HasSubstr("p.conf:1: line is 5016 bytes; the limit is 4096"));
}

TEST(PolicyTest, AnEmptyPolicyDeniesEverything) {
  auto p = MustParse("# nobody\n");
  EXPECT_EQ(p->rule_count(), 0u);
  EXPECT_FALSE(p->MayAdmin("relayctl", "Read").ok());
}

TEST(PolicyTest, LoadRefusesAMissingFile) {
  absl::StatusOr<std::shared_ptr<const Policy>> p = Policy::Load("/nonexistent/policy.conf");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("/nonexistent/policy.conf': cannot read"));
}

TEST(PolicyTest, WithoutAPolicyFileEverythingIsAllowed) {
  Authorizer open;
  EXPECT_FALSE(open.enforcing());
  EXPECT_TRUE(open.MayPublish("", "orders").ok());
  EXPECT_TRUE(open.MaySubscribe("x", "orders", "g").ok());
  EXPECT_TRUE(open.MayAdmin("", "Read").ok());
  EXPECT_TRUE(open.Reload().ok());
}

TEST(StampSourceTest, EmptySourcesTakeTheIdentityAndForgedOnesChangeNothing) {
  google::protobuf::RepeatedPtrField<events::v1::Event> events;
  for (int i = 0; i < 3; ++i) events.Add();
  events[0].set_source("svc-a");
  events[2].set_id("e-2");
  ASSERT_TRUE(StampSource("svc-a", &events).ok());
  for (const auto& e : events) EXPECT_EQ(e.source(), "svc-a");

  google::protobuf::RepeatedPtrField<events::v1::Event> forged;
  for (int i = 0; i < 2; ++i) forged.Add();
  forged[1].set_id("e-1");
  forged[1].set_source("svc-b");
  absl::Status s = StampSource("svc-a", &forged);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("event #1 (id 'e-1') has source 'svc-b'"));
  EXPECT_EQ(forged[0].source(), "");  // not stamped: the batch is refused whole

  // A plaintext caller (no identity): sources are as sent.
  ASSERT_TRUE(StampSource("", &forged).ok());
  EXPECT_EQ(forged[1].source(), "svc-b");
}

}  // namespace
}  // namespace relay::broker
