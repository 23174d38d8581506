#include "tools/relayctl/trace.h"

#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "common/text.h"
#include "common/trace.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tools/relayctl/broker_read.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

namespace bv1 = relay::broker::v1;
using relay::events::v1::Event;

struct Acks {
  std::vector<std::string> acked;
  std::vector<std::string> waiting;
};

Acks AcksFor(const Event& e, const std::vector<bv1::GroupInfo>& groups) {
  Acks acks;
  for (const bv1::GroupInfo& g : groups) {
    if (g.topic() != e.topic()) continue;
    (g.committed_offset() > e.offset() ? acks.acked : acks.waiting).push_back(g.group());
  }
  return acks;
}

google::protobuf::Value StringList(const std::vector<std::string>& items) {
  google::protobuf::Value value;
  auto* list = value.mutable_list_value();
  for (const std::string& s : items) *list->add_values() = StringValue(s);
  return value;
}

int Trace(Context& ctx, const Args& args) {
  std::string order_id = args.Positional(0);
  if (order_id.empty()) return ctx.UsageError("trace", "ORDER_ID is empty");
  // A trace id (the traceparent's, in the logs' trace= field) is the
  // order id's 128 bits in hex: order-service starts one trace per order.
  if (IsTraceId(order_id)) order_id = *IdFromBitsHex("ord", order_id);
  std::vector<std::string> topics = DefaultTraceTopics();
  if (args.Has("topics")) {
    topics = absl::StrSplit(args.Get("topics"), ',', absl::SkipEmpty());
    if (topics.empty()) return ctx.UsageError("trace", "--topics is empty");
  }
  auto stub = bv1::Broker::NewStub(ctx.Channel(ctx.endpoints().broker));
  std::vector<Event> events;
  std::string failed;
  if (grpc::Status s = ReadCorrelated(ctx, *stub, topics, order_id, std::nullopt, &events, &failed);
      !s.ok()) {
    return ctx.RpcFailed(absl::StrCat("trace ", Excerpt(order_id), ": read ", Excerpt(failed)),
                         ctx.endpoints().broker, s);
  }
  if (events.empty()) {
    return ctx.Fail(kExitNotFound, absl::StrCat("trace ", Excerpt(order_id)),
                    absl::StrCat("no events with correlation_id ", Excerpt(order_id), " in ",
                                 absl::StrJoin(topics, ", ")));
  }
  SortByPublishTime(&events);

  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  bv1::DescribeGroupsResponse groups;
  grpc::Status status = stub->DescribeGroups(&call, bv1::DescribeGroupsRequest(), &groups);
  if (!status.ok()) {
    return ctx.RpcFailed(absl::StrCat("trace ", Excerpt(order_id), ": describe groups"),
                         ctx.endpoints().broker, status);
  }
  PrintTrace(ctx.out(), order_id, events, {groups.groups().begin(), groups.groups().end()},
             ctx.json());
  return kExitOk;
}

}  // namespace

const std::vector<std::string>& DefaultTraceTopics() {
  static const auto* topics = new std::vector<std::string>{
      "orders", "inventory", "payments", "orders.dlq", "inventory.dlq", "payments.dlq"};
  return *topics;
}

void PrintTrace(std::ostream& out, const std::string& order_id, const std::vector<Event>& events,
                const std::vector<bv1::GroupInfo>& groups, bool json) {
  if (events.empty()) return;
  const absl::Time first = ToTime(events.front().publish_time());
  const absl::Duration total = ToTime(events.back().publish_time()) - first;
  std::set<std::string> topics;
  for (const Event& e : events) topics.insert(e.topic());

  if (json) {
    google::protobuf::Value doc;
    auto& fields = *doc.mutable_struct_value()->mutable_fields();
    fields["order_id"] = StringValue(order_id);
    fields["duration_ms"] = NumberValue(absl::ToDoubleMilliseconds(total));
    auto* list = fields["events"].mutable_list_value();
    absl::Time previous = first;
    for (const Event& e : events) {
      const absl::Time at = ToTime(e.publish_time());
      google::protobuf::Value item = EventToJsonValue(e);
      auto& f = *item.mutable_struct_value()->mutable_fields();
      f["since_previous_ms"] = NumberValue(absl::ToDoubleMilliseconds(at - previous));
      f["since_first_ms"] = NumberValue(absl::ToDoubleMilliseconds(at - first));
      Acks acks = AcksFor(e, groups);
      f["acked_by"] = StringList(acks.acked);
      f["not_acked_by"] = StringList(acks.waiting);
      *list->add_values() = std::move(item);
      previous = at;
    }
    out << ToJson(doc, true) << "\n";
    return;
  }

  out << "trace " << order_id << ": " << events.size()
      << (events.size() == 1 ? " event" : " events") << " in " << absl::StrJoin(topics, ", ")
      << " over " << FormatDelta(total) << "\n\n";
  Table table({{"TIME"},
               {"+PREV", Table::kRight},
               {"+FIRST", Table::kRight},
               {"TOPIC"},
               {"OFFSET", Table::kRight},
               {"TYPE"},
               {"SOURCE"},
               {"ACKED BY"},
               {"NOT YET"},
               {"DETAILS"}});
  absl::Time previous = first;
  bool is_first = true;
  for (const Event& e : events) {
    const absl::Time at = ToTime(e.publish_time());
    Acks acks = AcksFor(e, groups);
    table.AddRow({FormatUtcTime(e.publish_time()), is_first ? "-" : FormatDelta(at - previous),
                  FormatDelta(at - first), e.topic(), absl::StrCat(e.offset()), Printable(e.type()),
                  e.source().empty() ? "-" : Printable(e.source()),
                  acks.acked.empty() ? "-" : absl::StrJoin(acks.acked, ","),
                  acks.waiting.empty() ? "-" : absl::StrJoin(acks.waiting, ","),
                  SummarizePayload(e)});
    previous = at;
    is_first = false;
  }
  table.Render(out);
}

std::vector<Command> TraceCommands() {
  return {
      {{"trace",
        "Shows an order's whole timeline across topics, with the time each hop took.",
        {"ORDER_ID|TRACE_ID"},
        {{"topics", Flag::kValue, "T1,T2",
          "topics to search (default orders,inventory,payments and their .dlq)"}},
        "Reads every event whose correlation_id header is ORDER_ID, merges them by publish\n"
        "time and prints, per event, the time since the previous and the first one, and\n"
        "which consumer groups of its topic have acknowledged it (committed offset past it).\n"
        "A trace id (32 hex digits: the trace= of the services' log lines, the\n"
        "traceparent of the events) names its order. Exit code 3 when no event has that\n"
        "correlation id."},
       Trace},
  };
}

}  // namespace relay::ctl
