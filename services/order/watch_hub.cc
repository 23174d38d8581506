#include "services/order/watch_hub.h"

#include <vector>

#include "common/log.h"
#include "services/order/order_store.h"

namespace relay::order {

WatchHub::WatchHub(store::Database* db)
    : db_(db), worker_("watch-hub", [this] {
        DeliverDirty();
        return absl::InfiniteDuration();  // until Add() or Changed() wakes it
      }) {
  worker_.Start();
}

WatchHub::~WatchHub() { Stop(); }

uint64_t WatchHub::Add(const std::string& order_id, Sink sink, OnStop on_stop) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return 0;
  uint64_t handle = next_handle_++;
  watchers_[handle] = Watcher{order_id, std::move(sink), std::move(on_stop)};
  by_order_[order_id].insert(handle);
  dirty_.insert(order_id);
  worker_.Wake();
  return handle;
}

void WatchHub::Remove(uint64_t handle) {
  absl::MutexLock deliver(&deliver_mu_);
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(handle);
  if (it == watchers_.end()) return;
  auto b = by_order_.find(it->second.order_id);
  if (b != by_order_.end()) {
    b->second.erase(handle);
    if (b->second.empty()) by_order_.erase(b);
  }
  watchers_.erase(it);
}

void WatchHub::Changed(const std::string& order_id) {
  absl::MutexLock lock(&mu_);
  if (by_order_.contains(order_id)) {
    dirty_.insert(order_id);
    worker_.Wake();
  }
}

void WatchHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  worker_.Stop();
  // As DeliverDirty() calls sinks: under deliver_mu_ (so Remove() waits for
  // the calls) and not under mu_. Add() registers nothing from now on, so
  // the list is complete; a second Stop() finds each watcher already told.
  absl::MutexLock deliver(&deliver_mu_);
  std::vector<OnStop*> enders;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [handle, watcher] : watchers_) {
      if (watcher.on_stop) enders.push_back(&watcher.on_stop);
    }
  }
  for (OnStop* on_stop : enders) {
    (*on_stop)();
    *on_stop = nullptr;  // once
  }
}

void WatchHub::DeliverDirty() {
  std::set<std::string> dirty;
  {
    absl::MutexLock lock(&mu_);
    dirty.swap(dirty_);
  }
  for (const std::string& id : dirty) {
    std::optional<v1::Order> order;
    absl::Status s = db_->Read([&](store::Tx& tx) -> absl::Status {
      absl::StatusOr<std::optional<v1::Order>> got = OrderStore::Get(tx, id);
      if (!got.ok()) return got.status();
      order = std::move(*got);
      return absl::OkStatus();
    });
    if (!s.ok()) {
      RELAY_LOG(Error, "watch read failed", {{"order", id}, {"error", s.ToString()}});
      continue;
    }
    if (!order.has_value()) continue;
    absl::MutexLock deliver(&deliver_mu_);
    std::vector<Sink*> sinks;
    {
      absl::MutexLock lock(&mu_);
      auto b = by_order_.find(id);
      if (b == by_order_.end()) continue;
      for (uint64_t h : b->second) sinks.push_back(&watchers_[h].sink);
    }
    // Sinks stay valid: Remove() needs deliver_mu_.
    for (Sink* sink : sinks) (*sink)(*order);
  }
}

}  // namespace relay::order
