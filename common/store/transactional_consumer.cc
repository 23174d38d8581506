#include "common/store/transactional_consumer.h"

#include <utility>

#include "common/log.h"
#include "common/store/inbox.h"
#include "common/trace.h"

namespace relay::store {

TransactionalConsumer::TransactionalConsumer(Database* db, std::shared_ptr<grpc::Channel> channel,
                                             Options options, OutboxRelay* relay)
    : TransactionalConsumer(db, std::make_shared<ChannelSet>(std::move(channel)),
                            std::move(options), relay) {}

TransactionalConsumer::TransactionalConsumer(Database* db, std::shared_ptr<ChannelSet> brokers,
                                             Options options, OutboxRelay* relay)
    : db_(db),
      relay_(relay),
      batch_(options.batch),
      before_handle_(std::move(options.before_handle)),
      after_commit_(std::move(options.after_commit)),
      topic_(options.subscriber.topic),
      other_metrics_(MetricsFor("other")),
      subscriber_(std::move(brokers), std::move(options.subscriber)) {
  if (batch_) {
    subscriber_.OnBatch(
        [this](absl::Span<const Delivery> deliveries) { return HandleBatch(deliveries); });
  }
}

TransactionalConsumer::~TransactionalConsumer() { Stop(); }

namespace {

// The trace id of `event` (its traceparent header), empty without one: a
// log::ScopedField with it adds trace=<id> to the lines of its handling.
std::string TraceIdOf(const TransactionalConsumer::Event& event) {
  auto it = event.headers().find(std::string(kTraceparentHeader));
  if (it == event.headers().end()) return "";
  std::optional<TraceParent> t = ParseTraceparent(it->second);
  return t.has_value() ? t->trace_id : "";
}

}  // namespace

TransactionalConsumer::TypeMetrics TransactionalConsumer::MetricsFor(
    const std::string& type) const {
  struct Families {
    metrics::Family<metrics::Counter>& events;
    metrics::Family<metrics::Histogram>& seconds;
  };
  static Families* families = [] {
    metrics::Registry& r = metrics::Registry::Default();
    return new Families{
        r.AddCounter("relay_service_events_total",
                     "Events received, by outcome: handled (committed), duplicate (in the inbox: "
                     "acked without effect), failed (rolled back and nacked), skipped (no handler)",
                     {"topic", "type", "outcome"}),
        r.AddHistogram("relay_service_handler_seconds",
                       "Time in an event's handler, inside its transaction", {"topic", "type"},
                       metrics::LatencyBuckets()),
    };
  }();
  return TypeMetrics{&families->events.With({topic_, type, "handled"}),
                     &families->events.With({topic_, type, "duplicate"}),
                     &families->events.With({topic_, type, "failed"}),
                     &families->events.With({topic_, type, "skipped"}),
                     &families->seconds.With({topic_, type})};
}

const TransactionalConsumer::TypeMetrics& TransactionalConsumer::MetricsOf(
    const std::string& type) const {
  auto it = type_metrics_.find(type);
  return it == type_metrics_.end() ? other_metrics_ : it->second;
}

void TransactionalConsumer::On(const std::string& type, Handler handler) {
  handlers_[type] = std::move(handler);
  type_metrics_.emplace(type, MetricsFor(type));
  // Registers the type with the subscriber (its filter), and is the path
  // deliveries take when not in batch mode.
  subscriber_.On(type,
                 [this](const Event& e, const DeliveryInfo& info) { return Handle(e, info); });
}

void TransactionalConsumer::Start() { subscriber_.Start(); }

void TransactionalConsumer::Stop() { subscriber_.Stop(); }

bool TransactionalConsumer::WaitUntilOpen(absl::Duration timeout) {
  return subscriber_.WaitUntilOpen(timeout);
}

TransactionalConsumer::Stats TransactionalConsumer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::Status TransactionalConsumer::Apply(Tx& tx, const Event& event, const DeliveryInfo& info,
                                          Outcome* outcome) {
  *outcome = Outcome::kSkipped;
  auto it = handlers_.find(event.type());
  if (it == handlers_.end()) return absl::OkStatus();  // not ours: ack, no inbox row
  absl::StatusOr<bool> fresh = Inbox::Claim(tx, event);
  if (!fresh.ok()) return fresh.status();
  if (!*fresh) {
    *outcome = Outcome::kDuplicate;
    return absl::OkStatus();
  }
  *outcome = Outcome::kHandled;
  log::ScopedField trace("trace", TraceIdOf(event));
  const absl::Time start = absl::Now();
  absl::Status status = it->second(tx, event, info);
  MetricsOf(event.type()).seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return status;
}

void TransactionalConsumer::Record(const Event& event, const DeliveryInfo& info,
                                   const absl::Status& status, Outcome outcome) {
  log::ScopedField trace("trace", TraceIdOf(event));
  const TypeMetrics& m = MetricsOf(event.type());
  if (!status.ok()) {
    m.failed->Add();
  } else if (outcome == Outcome::kHandled) {
    m.handled->Add();
  } else if (outcome == Outcome::kDuplicate) {
    m.duplicate->Add();
  } else {
    m.skipped->Add();
  }
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      ++stats_.failed;
    } else if (outcome == Outcome::kHandled) {
      ++stats_.handled;
    } else if (outcome == Outcome::kDuplicate) {
      ++stats_.duplicates;
    }
  }
  if (!status.ok()) {
    RELAY_LOG(Warn, "event handling failed, rolled back and nacked",
              {{"event", event.id()},
               {"type", event.type()},
               {"key", event.key()},
               {"attempt", absl::StrCat(info.attempt)},
               {"error", status.ToString()}});
  } else if (outcome == Outcome::kDuplicate) {
    RELAY_LOG(Info, "event handled before, acked without effect",
              {{"event", event.id()}, {"type", event.type()}, {"key", event.key()}});
  }
}

absl::Status TransactionalConsumer::Handle(const Event& event, const DeliveryInfo& info) {
  if (before_handle_ && handlers_.count(event.type()) > 0) before_handle_(event);
  Outcome outcome = Outcome::kSkipped;
  absl::Status s =
      db_->Transaction([&](Tx& tx) -> absl::Status { return Apply(tx, event, info, &outcome); });
  Record(event, info, s, outcome);
  if (s.ok() && outcome == Outcome::kHandled) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.commits;
    }
    if (relay_ != nullptr) relay_->Wake();
    if (after_commit_) {
      log::ScopedField trace("trace", TraceIdOf(event));
      after_commit_(event);
    }
  }
  return s;
}

std::vector<absl::Status> TransactionalConsumer::HandleBatch(
    absl::Span<const Delivery> deliveries) {
  std::vector<absl::Status> statuses(deliveries.size());
  std::vector<Outcome> outcomes(deliveries.size(), Outcome::kSkipped);
  bool changed = false;
  if (before_handle_) {
    for (const Delivery& d : deliveries) {
      if (handlers_.count(d.event->type()) > 0) before_handle_(*d.event);
    }
  }
  absl::Status committed = db_->Transaction([&](Tx& tx) -> absl::Status {
    for (size_t i = 0; i < deliveries.size(); ++i) {
      const Delivery& d = deliveries[i];
      if (handlers_.find(d.event->type()) == handlers_.end()) continue;
      statuses[i] = tx.Savepoint(
          [&](Tx& sp) -> absl::Status { return Apply(sp, *d.event, d.info, &outcomes[i]); });
      if (!tx.in_transaction()) {
        // SQLite rolled the whole transaction back (disk full, I/O error):
        // the events before this one are undone too.
        return statuses[i].ok() ? absl::InternalError("the transaction ended unexpectedly")
                                : statuses[i];
      }
      if (statuses[i].ok() && outcomes[i] == Outcome::kHandled) changed = true;
    }
    return absl::OkStatus();
  });
  if (!committed.ok()) {
    // Events without a handler had no part in the transaction: still acked.
    for (size_t i = 0; i < deliveries.size(); ++i) {
      if (handlers_.count(deliveries[i].event->type()) > 0) statuses[i] = committed;
    }
    changed = false;
  }
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Record(*deliveries[i].event, deliveries[i].info, statuses[i], outcomes[i]);
  }
  if (changed) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.commits;
    }
    if (relay_ != nullptr) relay_->Wake();
    if (after_commit_) {
      for (size_t i = 0; i < deliveries.size(); ++i) {
        if (statuses[i].ok() && outcomes[i] == Outcome::kHandled) {
          log::ScopedField trace("trace", TraceIdOf(*deliveries[i].event));
          after_commit_(*deliveries[i].event);
        }
      }
    }
  }
  return statuses;
}

}  // namespace relay::store
