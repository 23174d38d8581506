#ifndef RELAY_BROKER_BROKER_METRICS_H_
#define RELAY_BROKER_BROKER_METRICS_H_

// The broker's Prometheus metrics (docs/OBSERVABILITY.md#broker).
//
// Two kinds: counters moved on the hot path (deliveries, acks, nacks; the
// storage's in broker/storage/storage_metrics.h), each one relaxed atomic
// add on a counter the group resolved once; and values the broker already
// keeps (a topic's offsets and bytes, a group's lag, in flight, members),
// read when scraped by a BrokerCollector.

#include <string>

#include "common/metrics.h"

namespace relay::broker {

class EventLog;
class GroupManager;

// A group's hot-path counters in the process registry. The same
// (topic, group) always gets the same counters.
struct GroupCounters {
  metrics::Counter* delivered;  // deliveries, first ones and redeliveries
  metrics::Counter* acked;
  metrics::Counter* nacked;
  metrics::Counter* filtered;  // passed over by the group's type filter
};
GroupCounters CountersFor(const std::string& topic, const std::string& group);

// Reports every topic's and group's state on each scrape of `registry`
// while it lives. `log` and `groups` must outlive it; destroying it waits
// for a scrape in progress.
class BrokerCollector {
 public:
  BrokerCollector(metrics::Registry* registry, const EventLog* log, const GroupManager* groups);
  ~BrokerCollector();
  BrokerCollector(const BrokerCollector&) = delete;
  BrokerCollector& operator=(const BrokerCollector&) = delete;

 private:
  metrics::Registry* const registry_;
  int id_;
};

}  // namespace relay::broker

#endif  // RELAY_BROKER_BROKER_METRICS_H_
