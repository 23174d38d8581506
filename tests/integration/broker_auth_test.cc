// Who may say what on a real broker with mutual TLS and the shipped policy
// (broker/policy.conf), with certificates from scripts/dev-pki: every
// refusal is PERMISSION_DENIED (or, without a good certificate,
// UNAVAILABLE) and changes nothing.

#include <grpcpp/client_context.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "broker/storage/fault_injection_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/dev_pki.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay {
namespace {

namespace bv1 = ::relay::broker::v1;
using ::relay::testing::PkiFiles;
using ::relay::testing::RunDevPki;
using ::testing::HasSubstr;

class BrokerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RunDevPki(pki_).ok());
    policy_ = dir_.Join("policy.conf");
    std::filesystem::copy_file(RELAY_SHIPPED_POLICY, policy_);
    testing::BrokerTestOptions options;
    options.tls = PkiFiles(pki_, "broker");
    options.policy_file = policy_;
    options.groups_env = groups_env_;
    absl::StatusOr<std::unique_ptr<broker::BrokerServer>> server =
        testing::StartBroker(dir_.Join("data"), options);
    ASSERT_TRUE(server.ok()) << server.status();
    broker_ = std::move(*server);
  }

  // A stub speaking as `identity` (its scripts/dev-pki certificate), or
  // with `tls` as given.
  std::unique_ptr<bv1::Broker::Stub> As(const std::string& identity) {
    return AsFiles(PkiFiles(pki_, identity));
  }
  std::unique_ptr<bv1::Broker::Stub> AsFiles(const TlsFiles& tls) {
    return bv1::Broker::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", broker_->port()), {}, tls));
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  static bv1::PublishRequest Request(const std::string& topic, const std::string& source) {
    bv1::PublishRequest request;
    request.set_topic(topic);
    events::v1::Event* e = request.add_events();
    e->set_id(absl::StrCat("e-", topic, "-", source));
    e->set_type("payment.captured");
    e->set_key("ord-1");
    e->set_source(source);
    return request;
  }

  grpc::Status Publish(const std::string& identity, const std::string& topic,
                       const std::string& source) {
    grpc::ClientContext context;
    Deadline(&context);
    bv1::PublishResponse response;
    return As(identity)->Publish(&context, Request(topic, source), &response);
  }

  // The events of `topic`, read as the operator (relayctl).
  std::vector<events::v1::Event> Events(const std::string& topic) {
    grpc::ClientContext context;
    Deadline(&context);
    bv1::ReadRequest request;
    request.set_topic(topic);
    bv1::ReadResponse response;
    grpc::Status s = As("relayctl")->Read(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.events().begin(), response.events().end()};
  }

  // The status a Subscribe open as `identity` ends with (OK: it opened).
  grpc::Status Subscribe(const std::string& identity, const std::string& topic,
                         const std::string& group) {
    grpc::ClientContext context;
    Deadline(&context);
    auto stream = As(identity)->Subscribe(&context);
    bv1::SubscribeRequest open;
    open.mutable_open()->set_topic(topic);
    open.mutable_open()->set_group(group);
    stream->Write(open);
    bv1::SubscribeResponse response;
    if (stream->Read(&response) && response.has_opened()) {
      context.TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  // Takes payment-service's subscribe right away from the policy file.
  void RevokePaymentSubscribe() {
    std::string text = testing::ReadFile(policy_);
    const std::string rule = "allow payment-service    subscribe orders";
    const size_t at = text.find(rule);
    ASSERT_NE(at, std::string::npos) << text;
    text.insert(at, "# ");
    std::ofstream(policy_, std::ios::trunc) << text;
  }

  testing::TempDir dir_;
  const std::string pki_ = dir_.Join("pki");
  std::string policy_;
  // The group checkpoints' file system (null: the default).
  broker::Env* groups_env_ = nullptr;
  std::unique_ptr<broker::BrokerServer> broker_;
};

TEST_F(BrokerAuthTest, EachServicePublishesItsTopicAndTheBrokerStampsTheSource) {
  ASSERT_TRUE(Publish("payment-service", "payments", "").ok());
  ASSERT_TRUE(Publish("order-service", "orders", "order-service").ok());
  std::vector<events::v1::Event> payments = Events("payments");
  ASSERT_EQ(payments.size(), 1u);
  EXPECT_EQ(payments[0].source(), "payment-service");
  std::vector<events::v1::Event> orders = Events("orders");
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].source(), "order-service");
}

// The attack of the issue: a process that is not order-service's peer
// speaking on `orders`, or payment-service's word forged by another.
TEST_F(BrokerAuthTest, PublishingAnotherServicesTopicOrSourceIsDeniedAndAppendsNothing) {
  grpc::Status other_topic = Publish("payment-service", "orders", "");
  EXPECT_EQ(other_topic.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(other_topic.error_message(),
              HasSubstr("relay://payment-service may not publish to topic 'orders'"));
  EXPECT_THAT(other_topic.error_message(), HasSubstr("payments (line"));

  grpc::Status forged = Publish("order-service", "orders", "payment-service");
  EXPECT_EQ(forged.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(forged.error_message(), HasSubstr("has source 'payment-service'"));
  EXPECT_THAT(forged.error_message(), HasSubstr("publisher is relay://order-service"));

  // relayctl, the operator, and relay-console read but publish nothing.
  EXPECT_EQ(Publish("relayctl", "orders", "").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Publish("relay-console", "orders", "").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Events("orders").empty());
  {
    grpc::ClientContext context;
    Deadline(&context);
    bv1::ListTopicsResponse topics;
    EXPECT_TRUE(As("relay-console")->ListTopics(&context, bv1::ListTopicsRequest(), &topics).ok());
  }
}

TEST_F(BrokerAuthTest, PublishStreamAnswersADeniedBatchInBandAndGoesOn) {
  grpc::ClientContext context;
  Deadline(&context);
  auto stream = As("inventory-service")->PublishStream(&context);
  bv1::PublishRequest denied = Request("orders", "");
  denied.set_request_id(1);
  bv1::PublishRequest forged = Request("inventory", "order-service");
  forged.set_request_id(2);
  bv1::PublishRequest good = Request("inventory", "");
  good.set_request_id(3);
  ASSERT_TRUE(stream->Write(denied));
  ASSERT_TRUE(stream->Write(forged));
  ASSERT_TRUE(stream->Write(good));
  stream->WritesDone();
  bv1::PublishResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(response.error().message(), HasSubstr("may not publish to topic 'orders'"));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(response.error().message(), HasSubstr("has source 'order-service'"));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_FALSE(response.has_error()) << response.error().message();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(Events("inventory").size(), 1u);
  EXPECT_EQ(Events("inventory")[0].source(), "inventory-service");
  EXPECT_TRUE(Events("orders").empty());
}

TEST_F(BrokerAuthTest, SubscribingAsAnotherServicesGroupIsDeniedAndCreatesNoGroup) {
  grpc::Status as_other = Subscribe("payment-service", "orders", "order-service");
  EXPECT_EQ(as_other.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(as_other.error_message(),
              HasSubstr("relay://payment-service may not subscribe to topic 'orders' as group "
                        "'order-service'"));
  EXPECT_THAT(as_other.error_message(), HasSubstr("orders as group payment-service (line"));
  EXPECT_EQ(Subscribe("payment-service", "inventory", "payment-service").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Subscribe("payment-service", "orders", "payment-service").ok());

  grpc::ClientContext context;
  Deadline(&context);
  bv1::DescribeGroupsRequest request;
  bv1::DescribeGroupsResponse response;
  ASSERT_TRUE(As("relayctl")->DescribeGroups(&context, request, &response).ok());
  ASSERT_EQ(response.groups_size(), 1);
  EXPECT_EQ(response.groups(0).group(), "payment-service");
}

TEST_F(BrokerAuthTest, OnlyTheOperatorMayCallTheAdminRpcs) {
  ASSERT_TRUE(Publish("order-service", "orders", "").ok());
  grpc::ClientContext read_context;
  Deadline(&read_context);
  bv1::ReadRequest read;
  read.set_topic("orders");
  bv1::ReadResponse read_response;
  grpc::Status denied = As("payment-service")->Read(&read_context, read, &read_response);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(),
              HasSubstr("relay://payment-service may not call Read (an admin RPC)"));
  EXPECT_EQ(read_response.events_size(), 0);

  grpc::ClientContext list_context;
  Deadline(&list_context);
  bv1::ListTopicsResponse topics;
  EXPECT_EQ(As("order-service")->ListTopics(&list_context, {}, &topics).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext describe_context;
  Deadline(&describe_context);
  bv1::DescribeGroupsResponse groups;
  EXPECT_EQ(As("inventory-service")->DescribeGroups(&describe_context, {}, &groups).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Events("orders").size(), 1u);
}

TEST_F(BrokerAuthTest, ClientsWithoutAGoodCertificateAreRefusedAndAppendNothing) {
  ASSERT_TRUE(RunDevPki(dir_.Join("other")).ok());
  ASSERT_TRUE(RunDevPki(pki_, {"--name", "expired", "--days", "-1"}).ok());
  const std::string ca = pki_ + "/ca.crt";
  TlsFiles foreign = PkiFiles(dir_.Join("other"), "order-service");
  foreign.ca = ca;  // trusts the broker, but its own certificate is not ours
  for (const TlsFiles& tls :
       {TlsFiles{}, TlsFiles{"", "", ca}, foreign, PkiFiles(pki_, "expired")}) {
    grpc::ClientContext context;
    Deadline(&context);
    bv1::PublishResponse response;
    grpc::Status s = AsFiles(tls)->Publish(&context, Request("orders", ""), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "cert " << tls.cert << " ca " << tls.ca << ": " << s.error_message();
  }
  EXPECT_TRUE(Events("orders").empty());
}

TEST_F(BrokerAuthTest, ABadPolicyOnReloadIsRefusedAndTheOldOneStays) {
  {
    std::ofstream bad(policy_, std::ios::app);
    bad << "allow payment-service admin\nallow payment-service publsh orders\n";
  }
  absl::Status reload = broker_->ReloadPolicy();
  EXPECT_EQ(reload.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reload.message(), HasSubstr("unknown action 'publsh'"));
  EXPECT_THAT(reload.message(), HasSubstr(absl::StrCat(policy_, ":")));
  // The old policy: payment-service is still no operator.
  grpc::ClientContext context;
  Deadline(&context);
  bv1::ListTopicsResponse topics;
  EXPECT_EQ(As("payment-service")->ListTopics(&context, {}, &topics).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // Fixed, the new rule applies to the next call.
  std::filesystem::copy_file(RELAY_SHIPPED_POLICY, policy_,
                             std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream good(policy_, std::ios::app);
    good << "allow payment-service admin\n";
  }
  ASSERT_TRUE(broker_->ReloadPolicy().ok());
  grpc::ClientContext after;
  Deadline(&after);
  EXPECT_TRUE(As("payment-service")->ListTopics(&after, {}, &topics).ok());
}

TEST_F(BrokerAuthTest, AReloadThatTakesARightAwayEndsTheStreamsThatUsedIt) {
  auto open = [&](const std::string& identity, grpc::ClientContext* context) {
    auto stream = As(identity)->Subscribe(context);
    bv1::SubscribeRequest request;
    request.mutable_open()->set_topic("orders");
    request.mutable_open()->set_group(identity);
    EXPECT_TRUE(stream->Write(request));
    bv1::SubscribeResponse response;
    EXPECT_TRUE(stream->Read(&response) && response.has_opened());
    return stream;
  };
  grpc::ClientContext payment_context, inventory_context;
  Deadline(&payment_context);
  Deadline(&inventory_context);
  auto payment = open("payment-service", &payment_context);
  auto inventory = open("inventory-service", &inventory_context);

  ASSERT_NO_FATAL_FAILURE(RevokePaymentSubscribe());
  ASSERT_TRUE(broker_->ReloadPolicy().ok());

  bv1::SubscribeResponse response;
  EXPECT_FALSE(payment->Read(&response));
  grpc::Status ended = payment->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ended.error_message(),
              HasSubstr("relay://payment-service may not subscribe to topic 'orders'"));
  // inventory-service kept its right and its stream: still a member.
  grpc::ClientContext context;
  Deadline(&context);
  bv1::DescribeGroupsRequest request;
  request.set_group("inventory-service");
  bv1::DescribeGroupsResponse groups;
  ASSERT_TRUE(As("relayctl")->DescribeGroups(&context, request, &groups).ok());
  ASSERT_EQ(groups.groups_size(), 1);
  EXPECT_EQ(groups.groups(0).members_size(), 1);
  inventory_context.TryCancel();
  inventory->Finish();
}

// The group checkpoints' syncs can be held: a new group's creation then
// waits inside its first save.
class BrokerAuthHeldGroupsTest : public BrokerAuthTest {
 protected:
  BrokerAuthHeldGroupsTest() { groups_env_ = &groups_; }
  void TearDown() override { broker_.reset(); }  // before groups_ goes

  broker::FaultInjectionEnv groups_{broker::Env::Default()};
};

// A Subscribe that passed the policy check and was still creating its group
// when a reload took the right away was skipped by the reload (not a member
// yet) and then opened: it received the group's events for good.
TEST_F(BrokerAuthHeldGroupsTest, AReloadWhileASubscribeOpensEndsItToo) {
  groups_.HoldSyncs(true);
  grpc::ClientContext context;
  Deadline(&context);
  auto stream = As("payment-service")->Subscribe(&context);
  bv1::SubscribeRequest request;
  request.mutable_open()->set_topic("orders");
  request.mutable_open()->set_group("payment-service");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(testing::WaitFor([&] { return groups_.held_syncs() > 0; }, absl::Seconds(10)));

  ASSERT_NO_FATAL_FAILURE(RevokePaymentSubscribe());
  ASSERT_TRUE(broker_->ReloadPolicy().ok());
  groups_.HoldSyncs(false);

  bv1::SubscribeResponse response;
  EXPECT_FALSE(stream->Read(&response) && response.has_opened());
  grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ended.error_message();
  EXPECT_THAT(ended.error_message(),
              HasSubstr("relay://payment-service may not subscribe to topic 'orders'"));
}

TEST(BrokerAuthStartTest, APolicyWithoutMutualTlsIsRefusedAtStart) {
  testing::TempDir dir;
  testing::BrokerTestOptions options;
  options.policy_file = RELAY_SHIPPED_POLICY;
  absl::StatusOr<std::unique_ptr<broker::BrokerServer>> server =
      testing::StartBroker(dir.Join("data"), options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("--policy needs mutual TLS"));
}

}  // namespace
}  // namespace relay
