#ifndef RELAY_SERVICES_ORDER_WATCH_HUB_H_
#define RELAY_SERVICES_ORDER_WATCH_HUB_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/store/sqlite.h"
#include "common/worker.h"
#include "relay/order/v1/order.pb.h"

namespace relay::order {

// Fans order changes out to WatchOrder streams. Writers call Changed(id)
// after (or while) changing an order; the hub's thread then reads the
// committed order from the database — waiting for the writer's transaction
// to end, since the connection is locked meanwhile — and hands it to every
// watcher of that order. Reading back instead of passing the new state
// means a rolled-back change is never shown.
//
// Thread-safe.
class WatchHub {
 public:
  // Called on the hub's thread with the order as committed; must not block.
  using Sink = std::function<void(const v1::Order&)>;
  // Called once by Stop() for each watcher still registered: the watcher
  // must end its stream (a server's stop waits for open streams). Must not
  // block, nor call back into the hub.
  using OnStop = std::function<void()>;

  // REQUIRES: `db` outlives the hub.
  explicit WatchHub(store::Database* db);
  ~WatchHub();  // Stop()

  // Registers `sink` and `on_stop` for `order_id` and schedules a first
  // read, so a new watcher gets the current state. Returns a handle for
  // Remove(), or 0 once Stop() has begun (nothing is registered: the
  // watcher should end its stream at once).
  uint64_t Add(const std::string& order_id, Sink sink, OnStop on_stop);
  // After it returns, `sink` and `on_stop` of `handle` are never called
  // again. Remove(0) does nothing.
  void Remove(uint64_t handle);
  void Changed(const std::string& order_id);
  // Ends the hub's thread, then calls every registered watcher's `on_stop`
  // (so the WatchOrder streams end and the server's stop does not wait for
  // them). Idempotent.
  void Stop();

 private:
  // The worker's pass: reads each order changed since the last pass and
  // hands it to its watchers.
  void DeliverDirty();

  store::Database* const db_;
  // Serializes sink calls with Remove(), so a removed sink is never running.
  // Lock order: deliver_mu_, then mu_. deliver_mu_ is held across the sink
  // calls and mu_ only briefly inside it, so Add() and Changed() (called by
  // writers, some inside a transaction) never wait for a sink to return.
  absl::Mutex deliver_mu_;
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(deliver_mu_);
  struct Watcher {
    std::string order_id;
    Sink sink;
    OnStop on_stop;
  };
  std::map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::set<uint64_t>> by_order_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // Add() registers nothing
  // Last: it runs DeliverDirty() and must stop before the state goes.
  Worker worker_;
};

}  // namespace relay::order

#endif  // RELAY_SERVICES_ORDER_WATCH_HUB_H_
