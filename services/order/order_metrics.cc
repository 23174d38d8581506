#include "services/order/order_metrics.h"

#include <algorithm>
#include <string>

#include "common/events/cancel_cause.h"
#include "google/protobuf/util/time_util.h"

namespace relay::order {
namespace {

struct Metrics {
  metrics::Counter& placed;
  metrics::Family<metrics::Counter>& ended;
  metrics::Histogram& saga_seconds;
};

Metrics& Get() {
  static Metrics* m = [] {
    metrics::Registry& r = metrics::Registry::Default();
    return new Metrics{
        r.AddCounter("relay_order_placed_total", "Orders placed (idempotent replays excluded)")
            .With({}),
        r.AddCounter("relay_order_ended_total",
                     "Orders that reached CONFIRMED or CANCELLED, by why they ended",
                     {"status", "reason"}),
        r.AddHistogram("relay_order_saga_seconds", "An order from placed to CONFIRMED or CANCELLED",
                       {},
                       {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                        60, 120, 300})
            .With({}),
    };
  }();
  return *m;
}

}  // namespace

void CountPlaced() { Get().placed.Add(); }

void CountEnded(const v1::Order& order, absl::Time now) {
  const bool confirmed = order.status() == v1::ORDER_STATUS_CONFIRMED;
  Get()
      .ended
      .With({confirmed ? "confirmed" : "cancelled",
             confirmed ? "none" : events::CancelCauseName(order.cancel_cause())})
      .Add();
  if (order.has_created_at()) {
    const absl::Time placed = absl::FromUnixMicros(
        google::protobuf::util::TimeUtil::TimestampToMicroseconds(order.created_at()));
    Get().saga_seconds.Observe(std::max(0.0, absl::ToDoubleSeconds(now - placed)));
  }
}

PendingOrdersCollector::PendingOrdersCollector(store::Database* db)
    : id_(metrics::Registry::Default().AddCollector([db](metrics::Collection& c) {
        int64_t pending = 0;
        absl::Status s = db->Read([&](store::Tx& tx) -> absl::Status {
          // orders_by_status makes this a range count over PENDING only.
          absl::StatusOr<store::Statement> q =
              tx.Prepare("SELECT count(*) FROM orders WHERE status = ?");
          if (!q.ok()) return q.status();
          if (absl::Status b = q->BindInt64(1, v1::ORDER_STATUS_PENDING); !b.ok()) return b;
          absl::StatusOr<bool> row = q->Step();
          if (!row.ok()) return row.status();
          if (*row) pending = q->ColumnInt64(0);
          return absl::OkStatus();
        });
        if (!s.ok()) return;  // nothing rather than a wrong value
        c.Gauge("relay_order_pending_orders", "Orders placed and not yet CONFIRMED or CANCELLED",
                {}, static_cast<double>(pending));
      })) {}

PendingOrdersCollector::~PendingOrdersCollector() {
  metrics::Registry::Default().RemoveCollector(id_);
}

}  // namespace relay::order
