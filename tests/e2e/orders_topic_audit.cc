#include "tests/e2e/orders_topic_audit.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/e2e/relay_system.h"

namespace relay::testing {

namespace {
constexpr uint8_t kConfirmed = 1;
constexpr uint8_t kCancelled = 2;
constexpr size_t kMaxExamples = 10;
}  // namespace

OrdersTopicAudit::OrdersTopicAudit(std::shared_ptr<grpc::Channel> broker)
    : stub_(broker::v1::Broker::NewStub(std::move(broker))) {
  thread_ = std::thread([this] { Run(); });
}

OrdersTopicAudit::~OrdersTopicAudit() { Stop(); }

void OrdersTopicAudit::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

uint64_t OrdersTopicAudit::cursor() const {
  absl::MutexLock lock(&mu_);
  return cursor_;
}

void OrdersTopicAudit::Run() {
  constexpr uint32_t kBatch = 5000;
  while (!stop_.HasBeenNotified()) {
    broker::v1::ReadRequest req;
    req.set_topic("orders");
    req.set_offset(cursor());
    req.set_max_events(kBatch);
    broker::v1::ReadResponse resp;
    grpc::Status s =
        Call([&](grpc::ClientContext* c) { return stub_->Read(c, req, &resp); }, absl::Seconds(10));
    if (!s.ok()) {
      // The broker is down (killed, restarting) or the topic is not there yet.
      stop_.WaitForNotificationWithTimeout(absl::Milliseconds(500));
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      for (const events::v1::Event& e : resp.events()) {
        if (e.offset() < cursor_) continue;
        gap_events_ += e.offset() - cursor_;
        cursor_ = e.offset() + 1;
        ++events_read_;
        Take(e);
      }
      if (resp.events_size() == 0 && resp.next_offset() > cursor_) {
        gap_events_ += resp.next_offset() - cursor_;
        cursor_ = resp.next_offset();
      }
    }
    // A short batch means the reader is at the end: poll again shortly.
    if (static_cast<uint32_t>(resp.events_size()) < kBatch) {
      stop_.WaitForNotificationWithTimeout(absl::Milliseconds(200));
    }
  }
}

void OrdersTopicAudit::Take(const events::v1::Event& e) {
  const std::string& type = e.type();
  const bool created = type == "order.created";
  const uint8_t terminal = type == "order.confirmed"   ? kConfirmed
                           : type == "order.cancelled" ? kCancelled
                                                       : 0;
  if (!created && terminal == 0) return;
  // Never 0, so that 0 can mean "none".
  const size_t id = std::hash<std::string>{}(e.id()) | 1;
  Seen& seen = orders_[e.key()];
  if (created) {
    if (seen.created_id == id) {
      ++redelivered_same_id_;
    } else if (seen.created_id != 0) {
      seen.created_twice = true;
    } else {
      seen.created_id = id;
    }
    return;
  }
  if (seen.terminal_id == id) {
    ++redelivered_same_id_;
    return;
  }
  if (seen.created_id == 0) seen.terminal_before_created = true;
  seen.terminal_id = id;
  seen.terminal |= terminal;
}

OrdersTopicAudit::Report OrdersTopicAudit::Check(const std::vector<order::v1::Order>& all) const {
  absl::MutexLock lock(&mu_);
  Report r;
  r.events_read = events_read_;
  r.gap_events = gap_events_;
  r.redelivered_same_id = redelivered_same_id_;
  auto example = [&](const std::string& order_id, const char* why) {
    if (r.examples.size() < kMaxExamples) r.examples.push_back(absl::StrCat(order_id, ": ", why));
  };
  size_t known = 0;
  for (const order::v1::Order& o : all) {
    auto it = orders_.find(o.order_id());
    if (it == orders_.end() || it->second.created_id == 0) {
      ++r.missing_created;
      example(o.order_id(), "no order.created");
      if (it == orders_.end()) continue;
    }
    ++known;
    const Seen& seen = it->second;
    if (seen.created_twice) {
      ++r.created_twice;
      example(o.order_id(), "two distinct order.created");
    }
    if (seen.terminal_before_created) {
      ++r.terminal_before_created;
      example(o.order_id(), "terminal event before order.created");
    }
    if (seen.terminal == (kConfirmed | kCancelled)) {
      ++r.confirmed_and_cancelled;
      example(o.order_id(), "both order.confirmed and order.cancelled");
    }
    const uint8_t want = o.status() == order::v1::ORDER_STATUS_CONFIRMED   ? kConfirmed
                         : o.status() == order::v1::ORDER_STATUS_CANCELLED ? kCancelled
                                                                           : 0;
    if (seen.terminal != want) {
      ++r.terminal_missing_or_wrong;
      example(o.order_id(), "terminal event missing or not the order's status");
    }
  }
  r.unknown_orders = static_cast<int>(orders_.size() - known);
  return r;
}

std::string OrdersTopicAudit::Report::ToString() const {
  std::string out = absl::StrCat(
      "events read ", events_read, ", gap ", gap_events, ", same id twice ", redelivered_same_id,
      " | I4 missing order.created ", missing_created, " | I5 created twice ", created_twice,
      ", terminal before created ", terminal_before_created, ", confirmed and cancelled ",
      confirmed_and_cancelled, ", terminal missing/wrong ", terminal_missing_or_wrong,
      " | unknown orders ", unknown_orders);
  for (const std::string& e : examples) absl::StrAppend(&out, "\n  ", e);
  return out;
}

}  // namespace relay::testing
