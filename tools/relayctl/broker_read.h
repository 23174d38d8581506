#ifndef RELAY_TOOLS_RELAYCTL_BROKER_READ_H_
#define RELAY_TOOLS_RELAYCTL_BROKER_READ_H_

// Reading the broker's topics for relayctl: whole ranges through the paged
// Read RPC, and events of several topics in one timeline.

#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tools/relayctl/context.h"

namespace relay::ctl {

// Reads `request.topic()` from `from` up to the topic's end (as the broker
// reports it while reading), page by page, appending the events that match
// the request's filters to `events`, at most `max_events` of them (0: no
// limit). Sets `*next` to where a later read continues. Each call gets the
// context's deadline.
grpc::Status ReadToEnd(Context& ctx, relay::broker::v1::Broker::Stub& stub,
                       relay::broker::v1::ReadRequest request, uint64_t from, uint64_t max_events,
                       std::vector<relay::events::v1::Event>* events, uint64_t* next);

// Every event of `topics` whose correlation_id header is `id`, appended to
// `events` in no particular order. With `since`, each topic is read from its
// first event published at or after `since` (found by a Read by time), so a
// long topic is not scanned from its start. With `resume`, a topic it has an
// entry for is read from there instead, and each topic's entry is set to
// where a later call goes on: a caller that polls reads only what is new.
// On failure `*failed_topic` names the topic whose read failed.
grpc::Status ReadCorrelated(Context& ctx, relay::broker::v1::Broker::Stub& stub,
                            const std::vector<std::string>& topics, const std::string& id,
                            std::optional<absl::Time> since,
                            std::vector<relay::events::v1::Event>* events,
                            std::string* failed_topic,
                            std::map<std::string, uint64_t>* resume = nullptr);

// Sorts events into one timeline: by publish time, then topic, then offset.
void SortByPublishTime(std::vector<relay::events::v1::Event>* events);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_BROKER_READ_H_
