// InventoryService over real gRPC on port 0, on a real SQLite file, without
// a broker (its outbox rows are inspected instead).

#include "services/inventory/inventory_service.h"

#include <chrono>
#include <memory>

#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "relay/events/v1/inventory_events.pb.h"
#include "services/inventory/inventory_store.h"
#include "services/inventory/inventory_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace relay::inventory {
namespace {

using ::relay::testing::IsOk;
using ::relay::testing::IsOkAndHolds;
using ::relay::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class InventoryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::Database::Open(dir_.Join("inventory.db"), {});
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Migrate(InventoryStore::Migrations()), IsOk());
    ASSERT_THAT(db_->Transaction([](store::Tx& tx) -> absl::Status {
      if (auto n = InventoryStore::SeedIfEmpty(tx, absl::Now()); !n.ok()) return n.status();
      return tx.Exec("DELETE FROM outbox");
    }),
                IsOk());
    service_ = std::make_unique<InventoryServiceImpl>(db_.get(), nullptr);
    auto server = StartGrpcServer("127.0.0.1:0", {service_.get()});
    ASSERT_THAT(server, IsOk());
    server_ = std::move(server->server);
    stub_ = v1::InventoryService::NewStub(MakeChannel(absl::StrCat("127.0.0.1:", server->port)));
    // A client with gRPC's defaults (8 KiB metadata limit), for bad input.
    default_stub_ = v1::InventoryService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server->port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // Calls `method` on the stub with a deadline; the answer as a StatusOr.
  template <typename Request, typename Response, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    Response response;
    grpc::Status s = ((*stub_).*method)(&context, request, &response);
    if (!s.ok()) return FromGrpcStatus(s);
    return response;
  }

  absl::StatusOr<v1::Product> SetStock(const v1::SetStockRequest& r) {
    return Call<v1::SetStockRequest, v1::Product>(&v1::InventoryService::Stub::SetStock, r);
  }
  absl::StatusOr<v1::Product> Restock(const std::string& sku, int64_t quantity) {
    v1::RestockRequest r;
    r.set_sku(sku);
    r.set_quantity(quantity);
    return Call<v1::RestockRequest, v1::Product>(&v1::InventoryService::Stub::Restock, r);
  }
  absl::StatusOr<v1::Product> GetStock(const std::string& sku) {
    v1::GetStockRequest r;
    r.set_sku(sku);
    return Call<v1::GetStockRequest, v1::Product>(&v1::InventoryService::Stub::GetStock, r);
  }
  std::vector<v1::Product> Products() {
    auto r = Call<v1::ListProductsRequest, v1::ListProductsResponse>(
        &v1::InventoryService::Stub::ListProducts, v1::ListProductsRequest());
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return {};
    return {r->products().begin(), r->products().end()};
  }
  absl::StatusOr<std::vector<std::string>> Reservations(const v1::ListReservationsRequest& req) {
    auto r = Call<v1::ListReservationsRequest, v1::ListReservationsResponse>(
        &v1::InventoryService::Stub::ListReservations, req);
    if (!r.ok()) return r.status();
    std::vector<std::string> out;
    for (const v1::Reservation& x : r->reservations()) out.push_back(x.order_id() + "/" + x.sku());
    return out;
  }
  std::vector<events::v1::Event> Outbox() {
    std::vector<events::v1::Event> out;
    auto rows = test_util::OutboxRows(*db_);
    EXPECT_THAT(rows, IsOk());
    if (rows.ok()) {
      for (auto& [topic, e] : *rows) out.push_back(e);
    }
    return out;
  }
  // What each product looks like, for "nothing changed" checks.
  std::string Snapshot() {
    std::string s;
    for (const v1::Product& p : Products()) absl::StrAppend(&s, p.ShortDebugString(), "\n");
    return s;
  }

  static v1::SetStockRequest Request(const std::string& sku, int64_t on_hand) {
    v1::SetStockRequest r;
    r.set_sku(sku);
    r.set_on_hand(on_hand);
    return r;
  }

  relay::testing::TempDir dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<InventoryServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::InventoryService::Stub> stub_;
  std::unique_ptr<v1::InventoryService::Stub> default_stub_;
};

TEST_F(InventoryServiceTest, ListProductsShowsTheSeedCatalogSortedBySku) {
  std::vector<v1::Product> products = Products();
  ASSERT_EQ(products.size(), 10u);
  std::vector<std::string> skus;
  for (const v1::Product& p : products) skus.push_back(p.sku());
  EXPECT_THAT(skus, ElementsAre("CB-USB", "DK-1", "GPU-1", "HD-1", "KB-1", "LP-1", "MN-27", "MS-1",
                                "SSD-1", "WC-1"));
  const v1::Product& gpu = products[2];
  EXPECT_EQ(gpu.name(), "Graphics card");
  EXPECT_EQ(gpu.on_hand(), 1);
  EXPECT_EQ(gpu.reserved(), 0);
  EXPECT_EQ(gpu.available(), 1);
  EXPECT_EQ(gpu.price().amount_minor(), 29900);
  EXPECT_EQ(gpu.price().currency(), "USD");
}

// An error quotes at most kMaxExcerptBytes (32) bytes of the caller's sku.
TEST_F(InventoryServiceTest, ANotFoundQuotesAtMost32BytesOfTheSku) {
  const std::string sku(64, 'S');  // the longest sku the API accepts
  absl::StatusOr<v1::Product> got = GetStock(sku);
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kNotFound, HasSubstr(sku.substr(0, 32))));
  EXPECT_THAT(got.status().message(), ::testing::Not(HasSubstr(sku)));
  EXPECT_LT(got.status().message().size(), 80u) << got.status();
}

TEST_F(InventoryServiceTest, GetStockOfAnUnknownSkuIsNotFound) {
  EXPECT_THAT(GetStock("NOPE"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("NOPE")));
  EXPECT_THAT(GetStock(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sku")));
  auto kb = GetStock("KB-1");
  ASSERT_THAT(kb, IsOk());
  EXPECT_EQ(kb->on_hand(), 50);
  EXPECT_EQ(kb->price().amount_minor(), 8900);
}

TEST_F(InventoryServiceTest, SetStockAndRestockValidationErrorsChangeNothing) {
  const std::string before = Snapshot();
  EXPECT_THAT(SetStock(Request("KB-1", -1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(">= 0")));
  EXPECT_THAT(SetStock(Request("", 5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sku")));
  v1::SetStockRequest bad_currency = Request("KB-1", 5);
  bad_currency.mutable_price()->set_amount_minor(100);
  bad_currency.mutable_price()->set_currency("dollars");
  EXPECT_THAT(SetStock(bad_currency),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("currency")));
  EXPECT_THAT(SetStock(Request("NEW-1", 5)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("give a name and a price")));
  v1::SetStockRequest no_price = Request("NEW-1", 5);
  no_price.set_name("New thing");
  EXPECT_THAT(SetStock(no_price), StatusIs(absl::StatusCode::kNotFound, HasSubstr("NEW-1")));
  EXPECT_THAT(Restock("KB-1", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be > 0")));
  EXPECT_THAT(Restock("KB-1", -3), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-3")));
  EXPECT_THAT(Restock("NOPE", 3), StatusIs(absl::StatusCode::kNotFound, HasSubstr("NOPE")));
  EXPECT_THAT(Restock("", 3), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sku")));
  EXPECT_EQ(Snapshot(), before);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(InventoryServiceTest, SetStockBelowWhatIsReservedIsRefused) {
  ASSERT_THAT(db_->Transaction([](store::Tx& tx) {
    return InventoryStore::SetLevel(tx, "KB-1", StockLevel{50, 5}, absl::Now());
  }),
              IsOk());
  EXPECT_THAT(SetStock(Request("KB-1", 4)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("below the 5 units reserved for pending orders")));
  EXPECT_EQ(GetStock("KB-1")->on_hand(), 50);
  auto exact = SetStock(Request("KB-1", 5));
  ASSERT_THAT(exact, IsOk());
  EXPECT_EQ(exact->on_hand(), 5);
  EXPECT_EQ(exact->reserved(), 5);
  EXPECT_EQ(exact->available(), 0);
  EXPECT_THAT(Outbox(), IsEmpty());  // stock alone is not catalog news
}

TEST_F(InventoryServiceTest, APriceChangeWritesProductUpdatedToTheOutbox) {
  v1::SetStockRequest r = Request("KB-1", 50);
  r.mutable_price()->set_amount_minor(7900);
  r.mutable_price()->set_currency("USD");
  auto p = SetStock(r);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->price().amount_minor(), 7900);
  EXPECT_EQ(p->name(), "Mechanical keyboard");
  EXPECT_EQ(GetStock("KB-1")->price().amount_minor(), 7900);

  std::vector<events::v1::Event> out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type(), "product.updated");
  EXPECT_EQ(out[0].key(), "KB-1");
  EXPECT_EQ(out[0].source(), "inventory-service");
  auto updated = test_util::Payload<events::v1::ProductUpdated>(out[0]);
  EXPECT_EQ(updated.sku(), "KB-1");
  EXPECT_EQ(updated.name(), "Mechanical keyboard");
  EXPECT_EQ(updated.price().amount_minor(), 7900);
  EXPECT_EQ(updated.price().currency(), "USD");

  // The same price again is no news.
  ASSERT_THAT(SetStock(r), IsOk());
  EXPECT_EQ(Outbox().size(), 1u);
}

TEST_F(InventoryServiceTest, SetStockCreatesAProductAndAnnouncesIt) {
  v1::SetStockRequest r = Request("MIC-1", 12);
  r.set_name("USB microphone");
  r.mutable_price()->set_amount_minor(6450);
  r.mutable_price()->set_currency("USD");
  auto p = SetStock(r);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->available(), 12);
  EXPECT_EQ(Products().size(), 11u);
  std::vector<events::v1::Event> out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(test_util::Payload<events::v1::ProductUpdated>(out[0]).name(), "USB microphone");
}

TEST_F(InventoryServiceTest, RestockAddsToOnHand) {
  auto p = Restock("GPU-1", 4);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->on_hand(), 5);
  EXPECT_EQ(p->available(), 5);
  EXPECT_EQ(GetStock("GPU-1")->on_hand(), 5);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(InventoryServiceTest, ListReservationsFiltersAndLimits) {
  const absl::Time t0 = absl::Now();
  ASSERT_THAT(db_->Transaction([&](store::Tx& tx) -> absl::Status {
    for (int i = 0; i < 5; ++i) {
      ReservationRow row{absl::StrCat("o-", i), "KB-1", 1,
                         i % 2 == 0 ? v1::RESERVATION_STATE_HELD : v1::RESERVATION_STATE_RELEASED};
      if (auto s = InventoryStore::InsertReservation(tx, row, t0 + absl::Seconds(i)); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }),
              IsOk());
  v1::ListReservationsRequest all;
  EXPECT_THAT(Reservations(all), IsOkAndHolds(ElementsAre("o-4/KB-1", "o-3/KB-1", "o-2/KB-1",
                                                          "o-1/KB-1", "o-0/KB-1")));
  v1::ListReservationsRequest held;
  held.set_held_only(true);
  EXPECT_THAT(Reservations(held), IsOkAndHolds(ElementsAre("o-4/KB-1", "o-2/KB-1", "o-0/KB-1")));
  v1::ListReservationsRequest one;
  one.set_order_id("o-3");
  EXPECT_THAT(Reservations(one), IsOkAndHolds(ElementsAre("o-3/KB-1")));
  v1::ListReservationsRequest two;
  two.set_limit(2);
  EXPECT_THAT(Reservations(two), IsOkAndHolds(ElementsAre("o-4/KB-1", "o-3/KB-1")));
  v1::ListReservationsRequest huge;
  huge.set_limit(1'000'000);
  EXPECT_THAT(Reservations(huge), IsOk());
  v1::ListReservationsRequest negative;
  negative.set_limit(-1);
  EXPECT_THAT(Reservations(negative),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

// ------------------------------------------------------------- bad input

constexpr size_t kTwoMegabytes = 2 << 20;

// What a default client saw: INVALID_ARGUMENT naming the field and its
// bound, in a message short enough that it never echoed the input.
MATCHER_P2(RefusedFor, field, bound, "") {
  const grpc::Status& s = arg;
  *result_listener << "code " << s.error_code() << ", " << s.error_message().size()
                   << "-byte message: " << s.error_message().substr(0, 200);
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
         s.error_message().find(absl::StrCat(field, " is ")) != std::string::npos &&
         s.error_message().find(absl::StrCat("limit is ", bound)) != std::string::npos &&
         s.error_message().size() < 200;
}

std::unique_ptr<grpc::ClientContext> Deadline() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return c;
}

TEST_F(InventoryServiceTest, SetStockSaysWhichFieldIsTooLong) {
  const std::string before = Snapshot();
  v1::Product p;
  v1::SetStockRequest long_sku = Request(std::string(kTwoMegabytes, 's'), 5);
  long_sku.set_name("Cable");
  long_sku.mutable_price()->set_amount_minor(100);
  long_sku.mutable_price()->set_currency("USD");
  EXPECT_THAT(default_stub_->SetStock(Deadline().get(), long_sku, &p), RefusedFor("sku", 64));

  for (size_t size : {size_t{201}, size_t{500} << 10, kTwoMegabytes}) {
    v1::SetStockRequest long_name = Request("NEW-1", 5);
    long_name.set_name(std::string(size, 'n'));
    long_name.mutable_price()->set_amount_minor(100);
    long_name.mutable_price()->set_currency("USD");
    EXPECT_THAT(default_stub_->SetStock(Deadline().get(), long_name, &p), RefusedFor("name", 200))
        << size;
  }
  v1::SetStockRequest long_currency = Request("NEW-1", 5);
  long_currency.set_name("Cable");
  long_currency.mutable_price()->set_amount_minor(100);
  long_currency.mutable_price()->set_currency(std::string(kTwoMegabytes, 'U'));
  grpc::Status s = default_stub_->SetStock(Deadline().get(), long_currency, &p);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().size();
  EXPECT_THAT(s.error_message(), HasSubstr("price.currency"));
  EXPECT_LT(s.error_message().size(), 200u);

  EXPECT_EQ(Snapshot(), before);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(InventoryServiceTest, TwoMegabyteSkuOrOrderIdIsInvalidArgumentForADefaultClient) {
  const std::string huge(kTwoMegabytes, 'x');
  v1::Product p;
  v1::GetStockRequest get;
  get.set_sku(huge);
  EXPECT_THAT(default_stub_->GetStock(Deadline().get(), get, &p), RefusedFor("sku", 64));
  v1::RestockRequest restock;
  restock.set_sku(huge);
  restock.set_quantity(1);
  EXPECT_THAT(default_stub_->Restock(Deadline().get(), restock, &p), RefusedFor("sku", 64));
  v1::ListReservationsRequest list;
  list.set_order_id(huge);
  v1::ListReservationsResponse reservations;
  EXPECT_THAT(default_stub_->ListReservations(Deadline().get(), list, &reservations),
              RefusedFor("order_id", 128));
}

TEST_F(InventoryServiceTest, FieldsAtTheirBoundsAreAccepted) {
  v1::SetStockRequest r = Request(std::string(64, 's'), 5);
  r.set_name(std::string(200, 'n'));
  r.mutable_price()->set_amount_minor(100);
  r.mutable_price()->set_currency("USD");
  v1::Product p;
  grpc::Status s = default_stub_->SetStock(Deadline().get(), r, &p);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// ---- ReserveStock, ReleaseStock, CommitStock: the saga's inventory steps as
// direct calls. They publish nothing: the outbox stays empty.

v1::ReserveStockRequest ReserveOf(const std::string& order,
                                  std::vector<std::pair<std::string, int>> lines) {
  v1::ReserveStockRequest r;
  r.set_order_id(order);
  for (const auto& [sku, quantity] : lines) {
    events::v1::StockLine* line = r.add_lines();
    line->set_sku(sku);
    line->set_quantity(quantity);
  }
  return r;
}

class StockStepsRpcTest : public InventoryServiceTest {
 protected:
  absl::StatusOr<v1::ReserveStockResponse> Reserve(const v1::ReserveStockRequest& r) {
    return Call<v1::ReserveStockRequest, v1::ReserveStockResponse>(
        &v1::InventoryService::Stub::ReserveStock, r);
  }
  absl::StatusOr<v1::StockChangeResponse> Release(const std::string& order) {
    v1::ReleaseStockRequest r;
    r.set_order_id(order);
    return Call<v1::ReleaseStockRequest, v1::StockChangeResponse>(
        &v1::InventoryService::Stub::ReleaseStock, r);
  }
  absl::StatusOr<v1::StockChangeResponse> Commit(const std::string& order) {
    v1::CommitStockRequest r;
    r.set_order_id(order);
    return Call<v1::CommitStockRequest, v1::StockChangeResponse>(
        &v1::InventoryService::Stub::CommitStock, r);
  }
  int64_t Reserved(const std::string& sku) {
    absl::StatusOr<v1::Product> p = GetStock(sku);
    return p.ok() ? p->reserved() : -1;
  }
};

TEST_F(StockStepsRpcTest, ReserveHoldsOnceAndARetryReplaysIt) {
  absl::StatusOr<v1::ReserveStockResponse> first = Reserve(ReserveOf("ord-1", {{"KB-1", 2}}));
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->reserved());
  EXPECT_FALSE(first->replayed());
  EXPECT_EQ(Reserved("KB-1"), 2);
  absl::StatusOr<v1::ReserveStockResponse> again = Reserve(ReserveOf("ord-1", {{"KB-1", 2}}));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->reserved());
  EXPECT_TRUE(again->replayed());
  EXPECT_EQ(again->state(), v1::RESERVATION_STATE_HELD);
  EXPECT_EQ(Reserved("KB-1"), 2);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(StockStepsRpcTest, InsufficientStockIsARejectionNotAnErrorAndHoldsNothing) {
  const std::string before = Snapshot();
  absl::StatusOr<v1::ReserveStockResponse> r =
      Reserve(ReserveOf("ord-gpu", {{"KB-1", 1}, {"GPU-1", 2}}));
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->reserved());
  EXPECT_EQ(r->short_sku(), "GPU-1");
  EXPECT_EQ(r->requested(), 2);
  EXPECT_EQ(r->available(), 1);
  EXPECT_THAT(r->reason(), HasSubstr("out of stock: sku GPU-1"));
  EXPECT_EQ(Snapshot(), before);
  // Nothing held, so nothing to release.
  absl::StatusOr<v1::StockChangeResponse> released = Release("ord-gpu");
  ASSERT_THAT(released, IsOk());
  EXPECT_THAT(released->lines(), IsEmpty());
}

TEST_F(StockStepsRpcTest, ReleaseGivesTheUnitsBackOnceAndALateReserveKeepsThemFree) {
  ASSERT_THAT(Reserve(ReserveOf("ord-2", {{"MS-1", 3}})), IsOk());
  absl::StatusOr<v1::StockChangeResponse> first = Release("ord-2");
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->lines_size(), 1);
  EXPECT_EQ(first->lines(0).quantity(), 3);
  EXPECT_EQ(Reserved("MS-1"), 0);
  absl::StatusOr<v1::StockChangeResponse> again = Release("ord-2");
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(again->lines(), IsEmpty());
  absl::StatusOr<v1::ReserveStockResponse> late = Reserve(ReserveOf("ord-2", {{"MS-1", 3}}));
  ASSERT_THAT(late, IsOk());
  EXPECT_FALSE(late->reserved());
  EXPECT_EQ(late->state(), v1::RESERVATION_STATE_RELEASED);
  EXPECT_EQ(Reserved("MS-1"), 0);
}

TEST_F(StockStepsRpcTest, AReserveThatLandsAfterTheReleaseThatUndidItHoldsNothing) {
  // order-service --flow=sync: its ReserveStock timed out, it released to
  // undo whatever the reserve did, and then the reserve arrived.
  ASSERT_THAT(Release("ord-late"), IsOk());
  absl::StatusOr<v1::ReserveStockResponse> late = Reserve(ReserveOf("ord-late", {{"KB-1", 2}}));
  ASSERT_THAT(late, IsOk());
  EXPECT_FALSE(late->reserved());
  EXPECT_TRUE(late->replayed());
  EXPECT_EQ(late->state(), v1::RESERVATION_STATE_RELEASED);
  EXPECT_THAT(late->lines(), IsEmpty());
  EXPECT_THAT(late->reason(), HasSubstr("released before it was reserved"));
  EXPECT_EQ(Reserved("KB-1"), 0);
  // Only that order is closed.
  ASSERT_THAT(Reserve(ReserveOf("ord-next", {{"KB-1", 2}})), IsOk());
  EXPECT_EQ(Reserved("KB-1"), 2);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(StockStepsRpcTest, CommitSellsTheHeldUnitsOnce) {
  const int64_t on_hand = GetStock("KB-1")->on_hand();
  ASSERT_THAT(Reserve(ReserveOf("ord-3", {{"KB-1", 4}})), IsOk());
  absl::StatusOr<v1::StockChangeResponse> first = Commit("ord-3");
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->lines_size(), 1);
  absl::StatusOr<v1::StockChangeResponse> again = Commit("ord-3");
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(again->lines(), IsEmpty());
  absl::StatusOr<v1::Product> p = GetStock("KB-1");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->on_hand(), on_hand - 4);
  EXPECT_EQ(p->reserved(), 0);
  // A sale is not released by a late compensation.
  ASSERT_THAT(Release("ord-3"), IsOk());
  EXPECT_EQ(GetStock("KB-1")->on_hand(), on_hand - 4);
}

TEST_F(StockStepsRpcTest, BadReservationsAreInvalidArgumentAndChangeNothing) {
  const std::string before = Snapshot();
  EXPECT_THAT(Reserve(ReserveOf("", {{"KB-1", 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("order_id is required")));
  EXPECT_THAT(Reserve(ReserveOf("ord-4", {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one")));
  EXPECT_THAT(Reserve(ReserveOf("ord-4", {{"KB-1", 0}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quantity must be in")));
  EXPECT_THAT(Reserve(ReserveOf("ord-4", {{"KB-1", -3}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quantity must be in")));
  EXPECT_THAT(Reserve(ReserveOf("ord-4", {{"", 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lines[0].sku")));
  absl::StatusOr<v1::ReserveStockResponse> huge =
      Reserve(ReserveOf("ord-4", {{std::string(1 << 20, 'K'), 1}}));
  EXPECT_THAT(huge, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_LT(huge.status().message().size(), 200u);
  EXPECT_THAT(Release(""), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(Commit(std::string(129, 'o')),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(Snapshot(), before);
  v1::ListReservationsRequest all;
  EXPECT_THAT(Reservations(all), IsOkAndHolds(IsEmpty()));
}

}  // namespace
}  // namespace relay::inventory
