#ifndef RELAY_SERVICES_INVENTORY_INVENTORY_HANDLERS_H_
#define RELAY_SERVICES_INVENTORY_INVENTORY_HANDLERS_H_

#include "services/shared/pending_log_lines.h"

// inventory-service's side of the saga (docs/ARCHITECTURE.md#saga-steps, steps 3 and 5):
// what it does on order.created, order.confirmed and order.cancelled from topic "orders".
// Each handler runs inside the TransactionalConsumer's transaction, with the
// event's inbox claim, and writes the events it emits to the outbox in that
// same transaction, so a redelivered event has no second effect.
//
//   InventoryHandlers handlers;
//   TransactionalConsumer::Options options;
//   options.before_handle = [&](const Event&) { handlers.DropUncommitted(); };
//   options.after_commit = [&](const Event& e) { handlers.Committed(e); };  // logs it
//   TransactionalConsumer consumer(db, channel, options);
//   handlers.Register(consumer);

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "common/store/sqlite.h"
#include "common/store/transactional_consumer.h"
#include "relay/events/v1/event.pb.h"
#include "relay/events/v1/order_events.pb.h"

namespace relay::inventory {

// A handler's log line is written only once its transaction committed (see
// Committed()), so the log never tells of an effect that was rolled back.
//
// Thread-safe.
class InventoryHandlers {
 public:
  using Event = events::v1::Event;

  InventoryHandlers() = default;

  InventoryHandlers(const InventoryHandlers&) = delete;
  InventoryHandlers& operator=(const InventoryHandlers&) = delete;

  // Registers the three handlers on `consumer`. REQUIRES: before its Start().
  void Register(store::TransactionalConsumer& consumer);

  // order.created: when the order has no reservation yet, reserves every
  // line (HELD rows, products.reserved up) and emits stock.reserved, or
  // reserves nothing and emits stock.rejected naming the short sku. An
  // order that already has reservations (any state) is left alone.
  absl::Status OrderCreated(store::Tx& tx, const events::v1::OrderCreated& m, const Event& e);
  // order.confirmed: the order's HELD reservations become COMMITTED (the
  // units are sold: on_hand and reserved go down). Emits nothing.
  absl::Status OrderConfirmed(store::Tx& tx, const events::v1::OrderConfirmed& m, const Event& e);
  // order.cancelled: the order's HELD reservations become RELEASED
  // (reserved goes down) and stock.released is emitted; nothing when none
  // is held (e.g. the order was rejected).
  absl::Status OrderCancelled(store::Tx& tx, const events::v1::OrderCancelled& m, const Event& e);

  // Forgets the log lines of events applied in a transaction that then
  // rolled back (they come again). Call it from the consumer's before_handle
  // hook: by then every earlier transaction has ended. REQUIRES: events are
  // handled one transaction at a time (as a started consumer does).
  void DropUncommitted() { log_lines_.DropUncommitted(); }
  // Writes the log line of `event`, whose transaction committed ("stock
  // reserved order=... lines=KB-1x2 event=... corr=..."): call it from the
  // consumer's after_commit hook. Returns false when there is none (no
  // handler here applied it).
  bool Committed(const Event& event) { return log_lines_.Committed(event); }

 private:
  // A log line waiting for its transaction to commit.
  struct Note {
    log::Level level = log::Level::kInfo;
    std::string message;
    std::string order;
    std::string detail_key;  // "lines" or "reason"
    std::string detail;
    std::string corr;
  };
  void AddNote(const Event& e, Note note);

  services::PendingLogLines log_lines_;
};

}  // namespace relay::inventory

#endif  // RELAY_SERVICES_INVENTORY_INVENTORY_HANDLERS_H_
