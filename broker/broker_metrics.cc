#include "broker/broker_metrics.h"

#include <vector>

#include "broker/group_manager.h"
#include "broker/storage/event_log.h"

namespace relay::broker {
namespace {

struct GroupFamilies {
  metrics::Family<metrics::Counter>& delivered;
  metrics::Family<metrics::Counter>& acked;
  metrics::Family<metrics::Counter>& nacked;
  metrics::Family<metrics::Counter>& filtered;
};

GroupFamilies& Families() {
  static GroupFamilies* families = [] {
    metrics::Registry& r = metrics::Registry::Default();
    return new GroupFamilies{
        r.AddCounter("relay_broker_deliveries_total",
                     "Events handed to a group's members, redeliveries included",
                     {"topic", "group"}),
        r.AddCounter("relay_broker_acks_total", "Deliveries acknowledged by a member",
                     {"topic", "group"}),
        r.AddCounter("relay_broker_nacks_total",
                     "Deliveries refused by a member (retried later or dead-lettered)",
                     {"topic", "group"}),
        r.AddCounter("relay_broker_filtered_total",
                     "Events passed over, never delivered, because the group's members asked "
                     "only for other types",
                     {"topic", "group"}),
    };
  }();
  return *families;
}

void CollectTopics(const EventLog& log, metrics::Collection& c) {
  for (const TopicStats& t : log.ListTopics()) {
    const metrics::Labels topic = {{"topic", t.name}};
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    // Offsets start at 0 and are never reused: the end offset is how many
    // events the topic ever took.
    c.Counter("relay_broker_events_appended_total", "Events appended to the topic", topic,
              d(t.end_offset));
    c.Gauge("relay_broker_log_events", "Events the topic's log retains", topic, d(t.events));
    c.Gauge("relay_broker_log_bytes", "Bytes of the topic's log on disk", topic, d(t.bytes));
    c.Gauge("relay_broker_log_segments", "Segment files of the topic's log", topic, d(t.segments));
    c.Counter("relay_broker_retention_forced_deleted_events_total",
              "Events deleted by the hard size cap before every group had acked them", topic,
              d(t.forced_deleted_events));
    c.Gauge("relay_broker_dedupe_index_ids", "Event ids in the topic's dedupe window", topic,
            d(t.dedupe_ids));
    c.Gauge("relay_broker_dedupe_index_bytes", "Memory of the topic's dedupe window", topic,
            d(t.dedupe_bytes));
    c.Counter("relay_broker_dedupe_evicted_ids_total",
              "Ids forgotten early to keep the dedupe windows within their memory budget", topic,
              d(t.dedupe_evicted));
  }
}

void CollectGroups(const GroupManager& groups, metrics::Collection& c) {
  for (const v1::GroupInfo& g : groups.Describe("", "")) {
    const metrics::Labels labels = {{"topic", g.topic()}, {"group", g.group()}};
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    c.Gauge("relay_broker_group_lag", "Events of the topic the group has not acked", labels,
            d(g.lag()));
    c.Gauge("relay_broker_group_in_flight", "Events delivered and not yet acked or nacked", labels,
            d(g.in_flight()));
    c.Gauge("relay_broker_group_waiting_retry", "Nacked events waiting for their retry time",
            labels, d(g.waiting_retry()));
    c.Gauge("relay_broker_group_members", "Members connected to the group", labels,
            d(static_cast<uint64_t>(g.members_size())));
    c.Gauge("relay_broker_group_committed_offset", "Every offset below it is acked", labels,
            d(g.committed_offset()));
    c.Gauge("relay_broker_group_window_bytes", "Bytes of events the group holds in memory", labels,
            d(g.window_bytes()));
    c.Counter("relay_broker_redeliveries_total",
              "Deliveries after the first (a nack, an ack deadline, a member gone)", labels,
              d(g.redelivered()));
    c.Counter("relay_broker_dead_letters_total", "Events moved to the group's dead-letter topic",
              labels, d(g.dead_lettered()));
    c.Counter("relay_broker_skipped_offsets_total",
              "Offsets the group passed without delivering (deleted by retention, unreadable)",
              labels, d(g.skipped_offsets()));
  }
}

}  // namespace

GroupCounters CountersFor(const std::string& topic, const std::string& group) {
  GroupFamilies& f = Families();
  return GroupCounters{&f.delivered.With({topic, group}), &f.acked.With({topic, group}),
                       &f.nacked.With({topic, group}), &f.filtered.With({topic, group})};
}

BrokerCollector::BrokerCollector(metrics::Registry* registry, const EventLog* log,
                                 const GroupManager* groups)
    : registry_(registry), id_(registry->AddCollector([log, groups](metrics::Collection& c) {
        CollectTopics(*log, c);
        CollectGroups(*groups, c);
      })) {}

BrokerCollector::~BrokerCollector() { registry_->RemoveCollector(id_); }

}  // namespace relay::broker
