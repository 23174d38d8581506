// relay-console's page and API against real peers on ephemeral ports: a
// broker alone (the services down: the console says so and keeps
// serving), then the whole saga in process (an order placed through the
// API, its stream followed to CONFIRMED with its four events, and the
// out-of-stock path to CANCELLED).

#include "tools/console/console.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "httplib.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "services/inventory/inventory_app.h"
#include "services/order/order_app.h"
#include "services/payment/payment_app.h"
#include "tests/testing/broker_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace relay::console {
namespace {

using google::protobuf::Value;
using ::relay::testing::IsOk;
using ::relay::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

Value ParseJson(const std::string& text) {
  Value v;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &v).ok()) << text;
  return v;
}

const Value& Field(const Value& v, const std::string& name) {
  static const Value* null = new Value();
  auto& fields = v.struct_value().fields();
  auto it = fields.find(name);
  return it == fields.end() ? *null : it->second;
}

// The peer named `name` in an overview document.
Value Peer(const Value& overview, const std::string& name) {
  for (const Value& p : Field(overview, "peers").list_value().values()) {
    if (Field(p, "name").string_value() == name) return p;
  }
  ADD_FAILURE() << "no peer " << name;
  return Value();
}

// The Server-Sent Events of one stream: (event, data) pairs.
struct SseReader {
  std::string buffer;
  std::vector<std::pair<std::string, std::string>> events;

  void Feed(const char* data, size_t n) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string event, payload;
      for (absl::string_view line : absl::StrSplit(buffer.substr(0, end), '\n')) {
        if (absl::ConsumePrefix(&line, "event: ")) event = std::string(line);
        if (absl::ConsumePrefix(&line, "data: ")) {
          if (!payload.empty()) payload += "\n";
          payload += std::string(line);
        }
      }
      if (!event.empty()) events.emplace_back(event, payload);
      buffer.erase(0, end + 2);
    }
  }
};

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay::testing::BrokerTestOptions options;
    options.max_deliveries = 2;  // the second nack dead-letters
    auto broker = relay::testing::StartBroker(dir_.Join("broker"), options);
    ASSERT_THAT(broker, IsOk());
    broker_ = std::move(*broker);
  }

  // A console on a free port; the services at `order` etc. (a closed port
  // when they are down).
  void StartConsole(Options options = {}) {
    options.listen = "127.0.0.1:0";
    options.endpoints.broker = broker_->target();
    options.endpoints.order = order_ ? absl::StrCat("127.0.0.1:", order_->port()) : kClosed;
    options.endpoints.inventory =
        inventory_ ? absl::StrCat("127.0.0.1:", inventory_->port()) : kClosed;
    options.endpoints.payment = payment_ ? absl::StrCat("127.0.0.1:", payment_->port()) : kClosed;
    if (options.refresh == Options().refresh) options.refresh = absl::Milliseconds(100);
    options.rpc_timeout = absl::Seconds(2);
    auto console = Console::Start(options);
    ASSERT_THAT(console, IsOk());
    console_ = std::move(*console);
  }

  void StartServices() {
    inventory::InventoryApp::Options io;
    io.broker_target = broker_->target();
    io.db_path = dir_.Join("inventory.db");
    auto inventory = inventory::InventoryApp::Start(io);
    ASSERT_THAT(inventory, IsOk());
    inventory_ = std::move(*inventory);
    payment::PaymentApp::Options po;
    po.broker_target = broker_->target();
    po.db_path = dir_.Join("payment.db");
    auto payment = payment::PaymentApp::Start(po);
    ASSERT_THAT(payment, IsOk());
    payment_ = std::move(*payment);
    order::OrderApp::Options oo;
    oo.broker_target = broker_->target();
    oo.db_path = dir_.Join("orders.db");
    auto order = order::OrderApp::Start(oo);
    ASSERT_THAT(order, IsOk());
    order_ = std::move(*order);
  }

  // Sends `request` in one write on a new connection and returns all that
  // comes back until the server closes it (empty on a connection error).
  std::string RawExchange(const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(console_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string answer;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
    }
    ::close(fd);
    return answer;
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", console_->port());
    client.set_read_timeout(30, 0);
    return client;
  }

  // POSTs an order; the response.
  httplib::Result Place(const std::string& body) {
    return Client().Post("/api/orders", body, "application/json");
  }

  // Follows /api/orders/ID/stream to its `end`; the stream's events.
  std::vector<std::pair<std::string, std::string>> Follow(const std::string& order_id) {
    SseReader reader;
    auto result = Client().Get(absl::StrCat("/api/orders/", order_id, "/stream"),
                               [&](const char* data, size_t n) {
                                 reader.Feed(data, n);
                                 return true;
                               });
    EXPECT_TRUE(result) << httplib::to_string(result.error());
    return reader.events;
  }

  static constexpr char kClosed[] = "127.0.0.1:1";
  relay::testing::TempDir dir_;
  std::unique_ptr<broker::BrokerServer> broker_;
  std::unique_ptr<inventory::InventoryApp> inventory_;
  std::unique_ptr<payment::PaymentApp> payment_;
  std::unique_ptr<order::OrderApp> order_;
  std::unique_ptr<Console> console_;
};

TEST_F(ConsoleTest, ServesThePageWithTheServicesDown) {
  StartConsole();
  auto page = Client().Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr("relay-console"));
  auto script = Client().Get("/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_THAT(script->get_header_value("Content-Type"), HasSubstr("javascript"));

  auto overview = Client().Get("/api/overview");
  ASSERT_TRUE(overview);
  ASSERT_EQ(overview->status, 200);
  Value doc = ParseJson(overview->body);
  EXPECT_TRUE(Field(Peer(doc, "relay-broker"), "ok").bool_value()) << overview->body;
  for (const char* down : {"order-service", "inventory-service", "payment-service"}) {
    Value peer = Peer(doc, down);
    EXPECT_FALSE(Field(peer, "ok").bool_value()) << down;
    EXPECT_THAT(Field(peer, "error").string_value(),
                HasSubstr(absl::StrCat(down, " at 127.0.0.1:1: unreachable")));
  }

  // Placing an order needs order-service: 503, saying which.
  auto placed = Place(R"({"customer_id":"c-alice","items":[{"sku":"KB-1","quantity":1}]})");
  ASSERT_TRUE(placed);
  EXPECT_EQ(placed->status, 503);
  EXPECT_THAT(placed->body, HasSubstr("order-service at 127.0.0.1:1: unreachable"));
  auto orders = Client().Get("/api/orders");
  ASSERT_TRUE(orders);
  EXPECT_EQ(orders->status, 503);
}

// Only the names it is reached by (DNS rebinding), never in a frame.
TEST_F(ConsoleTest, AnswersOnlyItsOwnHostNamesAndForbidsFraming) {
  StartConsole();
  auto rebound = Client().Get("/api/overview", {{"Host", "evil.example:8080"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  EXPECT_THAT(rebound->body, HasSubstr("host 'evil.example' is not one this console answers to"));
  auto post = Client().Post("/api/orders", {{"Host", "evil.example"}}, "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 403);
  for (const char* host : {"localhost:8080", "LOCALHOST", "[::1]:8080", "127.0.0.1"}) {
    auto ok = Client().Get("/", {{"Host", host}});
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << host;
    EXPECT_EQ(ok->get_header_value("X-Frame-Options"), "DENY");
    EXPECT_EQ(ok->get_header_value("X-Content-Type-Options"), "nosniff");
    EXPECT_THAT(ok->get_header_value("Content-Security-Policy"),
                HasSubstr("frame-ancestors 'none'"));
  }
}

TEST_F(ConsoleTest, RefusesBadRequestsBriefly) {
  StartConsole();
  auto not_json = Place("{\"customer_id\": " + std::string(10000, 'x'));
  ASSERT_TRUE(not_json);
  EXPECT_EQ(not_json->status, 400);
  EXPECT_THAT(not_json->body, HasSubstr("not a PlaceOrderRequest"));
  EXPECT_LT(not_json->body.size(), 400u) << "the error must not echo the input";

  auto unknown_field = Place(R"({"customer":"c-alice"})");
  ASSERT_TRUE(unknown_field);
  EXPECT_EQ(unknown_field->status, 400);

  auto huge = Place(std::string(1 << 20, '{'));
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  EXPECT_LT(huge->body.size(), 400u);

  auto form = Client().Post("/api/orders", "customer_id=c-alice", "text/plain");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 415);

  auto status = Client().Get("/api/orders?status=lost");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 400);
  EXPECT_THAT(status->body, HasSubstr("not pending, confirmed, cancelled or all"));
  auto limit = Client().Get("/api/orders?limit=100000");
  ASSERT_TRUE(limit);
  EXPECT_EQ(limit->status, 400);

  auto missing = Client().Get("/no/such/page");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, HasSubstr("not found: '/no/such/page'"));

  // The body limit holds against a Content-Length only: a chunked body (no
  // length) was read whole first, however large. Refused before it is read,
  // whatever its size: a small one here, sent with the head in one write so
  // that the server's close cannot reset the answer away.
  const std::string chunked = RawExchange(
      "POST /api/orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  EXPECT_THAT(chunked, StartsWith("HTTP/1.1 411"));
  EXPECT_THAT(chunked, HasSubstr("needs a Content-Length"));
  // A compressed body would be inflated whole, past the limit.
  const std::string gzip = RawExchange(
      "POST /api/orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
  EXPECT_THAT(gzip, StartsWith("HTTP/1.1 415"));
  EXPECT_THAT(gzip, HasSubstr("must not be compressed"));
}

TEST_F(ConsoleTest, BadOptionsAreRefusedAtStart) {
  auto start = [&](const std::function<void(Options&)>& change) {
    Options o;
    o.listen = "127.0.0.1:0";
    o.endpoints.broker = broker_->target();
    change(o);
    return Console::Start(o).status();
  };
  EXPECT_THAT(start([](Options& o) { o.rpc_timeout = absl::InfiniteDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rpc_timeout")));
  EXPECT_THAT(start([](Options& o) { o.rpc_timeout = absl::ZeroDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rpc_timeout")));
  // An infinite refresh left the page on its first snapshot for good.
  EXPECT_THAT(start([](Options& o) { o.refresh = absl::InfiniteDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("100ms to 1h")));
  // A thread each, made at start: a million aborted the process.
  EXPECT_THAT(start([](Options& o) { o.max_streams = 1 << 30; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_streams")));
}

// An --allowed_hosts entry written with its port (or brackets) matches the
// Host header it names; it never matched before, and every request got 403.
TEST_F(ConsoleTest, AnAllowedHostWithAPortMatches) {
  Options options;
  options.allowed_hosts = {"Console.LAN:8080", "[fe80::1]"};
  StartConsole(options);
  for (const char* host : {"console.lan:8080", "console.lan", "[fe80::1]:8080"}) {
    auto ok = Client().Get("/", {{"Host", host}});
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << host;
  }
}

TEST_F(ConsoleTest, StreamsSnapshotsAndBoundsTheStreams) {
  Options options;
  options.max_streams = 1;
  StartConsole(options);

  // One stream: it gets snapshots, one per refresh.
  absl::Mutex mu;
  SseReader reader;
  std::atomic<bool> release{false};
  std::thread first([&] {
    httplib::Client client("127.0.0.1", console_->port());
    client.Get("/api/stream", [&](const char* data, size_t n) {
      absl::MutexLock lock(&mu);
      reader.Feed(data, n);
      return !release.load();
    });
  });
  auto snapshots = [&] {
    absl::MutexLock lock(&mu);
    return reader.events.size();
  };
  EXPECT_TRUE(relay::testing::WaitFor([&] { return snapshots() >= 3; }, absl::Seconds(20)));
  {
    absl::MutexLock lock(&mu);
    for (const auto& [event, data] : reader.events) {
      EXPECT_EQ(event, "overview");
      EXPECT_TRUE(Field(Peer(ParseJson(data), "relay-broker"), "ok").bool_value());
    }
  }

  // A second one while the first is open: refused.
  auto second = Client().Get("/api/stream");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503);
  EXPECT_THAT(second->body, HasSubstr("too many open streams (1)"));

  release = true;
  first.join();
  // The slot is free again once the first stream is gone.
  EXPECT_TRUE(relay::testing::WaitFor(
      [&] {
        SseReader again;
        httplib::Client client("127.0.0.1", console_->port());
        auto r = client.Get("/api/stream", [&](const char* data, size_t n) {
          again.Feed(data, n);
          return again.events.empty();
        });
        return !again.events.empty();
      },
      absl::Seconds(20)));
}

// A poison event nacked twice: the overview lists its dead letter with the
// group, the attempts and the reason.
TEST_F(ConsoleTest, ShowsDeadLetters) {
  namespace bv1 = relay::broker::v1;
  auto stub = bv1::Broker::NewStub(relay::testing::Channel(broker_->target()));
  {
    grpc::ClientContext call;
    bv1::PublishRequest publish;
    publish.set_topic("orders");
    relay::events::v1::Event* e = publish.add_events();
    e->set_id("poison-1");
    e->set_type("order.created");
    e->set_key("ord-poison");
    e->set_source("console-test");
    bv1::PublishResponse response;
    ASSERT_TRUE(stub->Publish(&call, publish, &response).ok());
  }
  {
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub->Subscribe(&call);
    bv1::SubscribeRequest open;
    open.mutable_open()->set_topic("orders");
    open.mutable_open()->set_group("fussy-group");
    ASSERT_TRUE(stream->Write(open));
    bv1::SubscribeResponse response;
    int nacked = 0;
    while (nacked < 2 && stream->Read(&response)) {
      for (const bv1::Delivery& d : response.deliveries()) {
        bv1::SubscribeRequest nack;
        bv1::SubscribeRequest::Nack* n = nack.add_nacks();
        n->set_offset(d.event().offset());
        n->set_attempt(d.attempt());
        n->set_reason("cannot parse the payload");
        n->mutable_retry_delay()->set_nanos(10'000'000);
        ASSERT_TRUE(stream->Write(nack));
        ++nacked;
      }
    }
    ASSERT_EQ(nacked, 2);
    stream->WritesDone();
    call.TryCancel();
    (void)stream->Finish();
  }
  StartConsole();
  Value dead;
  ASSERT_TRUE(relay::testing::WaitFor(
      [&] {
        auto o = Client().Get("/api/overview");
        if (!o || o->status != 200) return false;
        Value overview = ParseJson(o->body);
        const auto& list = Field(overview, "dead_letters").list_value();
        if (list.values_size() == 0) return false;
        dead = list.values(0);
        return true;
      },
      absl::Seconds(20)));
  EXPECT_EQ(Field(dead, "topic").string_value(), "orders.dlq");
  const Value& letter = Field(dead, "payload");
  EXPECT_EQ(Field(letter, "group").string_value(), "fussy-group");
  EXPECT_EQ(Field(letter, "last_error").string_value(), "nack: cannot parse the payload");
  EXPECT_EQ(Field(letter, "attempts").list_value().values_size(), 2);
  EXPECT_EQ(Field(Field(letter, "event"), "id").string_value(), "poison-1");
}

TEST_F(ConsoleTest, StopEndsOpenStreams) {
  StartConsole();
  std::atomic<int> received{0};
  std::thread reader([&] {
    httplib::Client client("127.0.0.1", console_->port());
    client.Get("/api/stream", [&](const char*, size_t) {
      ++received;
      return true;  // never lets go by itself
    });
  });
  EXPECT_TRUE(relay::testing::WaitFor([&] { return received > 0; }, absl::Seconds(20)));
  console_->Stop();  // must not wait for the client
  reader.join();
}

TEST_F(ConsoleTest, PlacesOrdersAndFollowsThemToTheirEnd) {
  StartServices();
  StartConsole();
  // order-service takes orders once product.updated filled its catalog.
  std::string order_id;
  ASSERT_TRUE(relay::testing::WaitFor(
      [&] {
        auto r = Place(R"({"customer_id":"c-alice","items":[{"sku":"KB-1","quantity":2}],
                           "idempotency_key":"console-test-1"})");
        if (!r || r->status != 201) return false;
        order_id = Field(Field(ParseJson(r->body), "order"), "order_id").string_value();
        return true;
      },
      absl::Seconds(20)));
  ASSERT_FALSE(order_id.empty());

  auto events = Follow(order_id);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back().first, "end");
  EXPECT_THAT(events.back().second, HasSubstr("\"complete\":true"));
  Value last = ParseJson(events[events.size() - 2].second);
  EXPECT_EQ(Field(Field(last, "order"), "status").string_value(), "ORDER_STATUS_CONFIRMED");
  std::vector<std::string> types;
  for (const Value& e : Field(Field(last, "trace"), "events").list_value().values()) {
    types.push_back(Field(e, "type").string_value());
  }
  EXPECT_THAT(types, ::testing::UnorderedElementsAre("order.created", "stock.reserved",
                                                     "payment.captured", "order.confirmed"));

  // GPU-1 has one unit: two are out of stock.
  auto r = Place(R"({"customer_id":"c-alice","items":[{"sku":"GPU-1","quantity":2}]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string cancelled =
      Field(Field(ParseJson(r->body), "order"), "order_id").string_value();
  events = Follow(cancelled);
  ASSERT_GE(events.size(), 2u);
  last = ParseJson(events[events.size() - 2].second);
  EXPECT_EQ(Field(Field(last, "order"), "status").string_value(), "ORDER_STATUS_CANCELLED");
  EXPECT_EQ(Field(Field(last, "order"), "cancel_cause").string_value(),
            "CANCEL_CAUSE_OUT_OF_STOCK");

  // Both in the list; the filter keeps only the cancelled one.
  auto list = Client().Get("/api/orders?status=cancelled");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200);
  EXPECT_THAT(list->body, HasSubstr(cancelled));
  EXPECT_THAT(list->body, Not(HasSubstr(order_id)));

  // The overview: order-service seen producing on orders, payment-service's
  // group, the stock and the balances.
  Value overview;
  auto orders_by_order_service = [&] {
    auto o = Client().Get("/api/overview");
    if (!o || o->status != 200) return false;
    overview = ParseJson(o->body);
    for (const Value& t : Field(overview, "topics").list_value().values()) {
      if (Field(t, "name").string_value() != "orders") continue;
      for (const Value& p : Field(t, "producers").list_value().values()) {
        if (p.string_value() == "order-service") return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(relay::testing::WaitFor(orders_by_order_service, absl::Seconds(20)));
  bool payment_group = false;
  for (const Value& g : Field(overview, "groups").list_value().values()) {
    payment_group |= Field(g, "topic").string_value() == "orders" &&
                     Field(g, "group").string_value() == "payment-service";
  }
  EXPECT_TRUE(payment_group);
  EXPECT_GT(Field(overview, "products").list_value().values_size(), 0);
  EXPECT_GT(Field(overview, "accounts").list_value().values_size(), 0);

  auto unknown = Client().Get("/api/orders/ord-nope");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_THAT(unknown->body, HasSubstr("no order 'ord-nope'"));
  // A byte that is not UTF-8 (the path's %FF): bad input, not a failing
  // order-service (it was 502, "error 12 ()").
  for (const char* path : {"/api/orders/ord-%FF", "/api/orders/ord-%FF/stream"}) {
    auto bad = Client().Get(path);
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400) << path;
    EXPECT_THAT(bad->body, HasSubstr("is not UTF-8")) << path;
  }
}

}  // namespace
}  // namespace relay::console
