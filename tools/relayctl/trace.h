#ifndef RELAY_TOOLS_RELAYCTL_TRACE_H_
#define RELAY_TOOLS_RELAYCTL_TRACE_H_

// `relayctl trace ORDER_ID`: an order's whole timeline across the topics,
// with the time each hop took and which consumer groups are past each event.

#include <ostream>
#include <string>
#include <vector>

#include "relay/broker/v1/broker.pb.h"
#include "relay/events/v1/event.pb.h"

namespace relay::ctl {

// The topics `trace` reads by default: the saga's three and their
// dead-letter topics.
const std::vector<std::string>& DefaultTraceTopics();

// Writes the timeline of `events` (REQUIRES: sorted by publish time) as a
// table, or as one JSON document: for each event its time, the time since
// the previous and the first event, topic, offset, type, source, payload
// summary, and the groups of its topic that acknowledged it (committed
// offset above the event's) and those that have not yet.
void PrintTrace(std::ostream& out, const std::string& order_id,
                const std::vector<relay::events::v1::Event>& events,
                const std::vector<relay::broker::v1::GroupInfo>& groups, bool json);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_TRACE_H_
