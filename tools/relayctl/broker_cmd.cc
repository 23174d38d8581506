// relayctl broker topics|groups: the broker's read-only view of itself.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

namespace bv1 = relay::broker::v1;

// "512 B", "1.5 KiB", "64.0 MiB".
std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, units[unit]);
}

int Topics(Context& ctx, const Args&) {
  auto stub = bv1::Broker::NewStub(ctx.Channel(ctx.endpoints().broker));
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  bv1::ListTopicsResponse response;
  grpc::Status status = stub->ListTopics(&call, bv1::ListTopicsRequest(), &response);
  if (!status.ok()) return ctx.RpcFailed("list topics", ctx.endpoints().broker, status);
  if (ctx.json()) {
    ctx.out() << ToJson(response, true) << "\n";
    return kExitOk;
  }
  Table table({{"TOPIC"},
               {"EVENTS", Table::kRight},
               {"BYTES", Table::kRight},
               {"FIRST", Table::kRight},
               {"END", Table::kRight},
               {"SEGMENTS", Table::kRight},
               {"OLDEST"},
               {"NEWEST"},
               {"FORCED DELETED", Table::kRight}});
  for (const bv1::TopicInfo& t : response.topics()) {
    table.AddRow({t.name(), absl::StrCat(t.events()), FormatBytes(t.bytes()),
                  absl::StrCat(t.first_offset()), absl::StrCat(t.end_offset()),
                  absl::StrCat(t.segments()), FormatUtcTime(t.first_time()),
                  FormatUtcTime(t.last_time()), absl::StrCat(t.forced_deleted_events())});
  }
  table.Render(ctx.out());
  return kExitOk;
}

int Groups(Context& ctx, const Args& args) {
  auto stub = bv1::Broker::NewStub(ctx.Channel(ctx.endpoints().broker));
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  bv1::DescribeGroupsRequest request;
  request.set_topic(args.Get("topic"));
  request.set_group(args.Get("group"));
  bv1::DescribeGroupsResponse response;
  grpc::Status status = stub->DescribeGroups(&call, request, &response);
  if (!status.ok()) return ctx.RpcFailed("describe groups", ctx.endpoints().broker, status);
  // Before the output, whatever its form: --json does not change the exit
  // code.
  if (response.groups().empty() && (args.Has("topic") || args.Has("group"))) {
    return ctx.Fail(kExitNotFound, "describe groups", "no group matches");
  }
  if (ctx.json()) {
    ctx.out() << ToJson(response, true) << "\n";
    return kExitOk;
  }
  Table table({{"TOPIC"},
               {"GROUP"},
               {"MEMBERS", Table::kRight},
               {"COMMITTED", Table::kRight},
               {"END", Table::kRight},
               {"LAG", Table::kRight},
               {"IN FLIGHT", Table::kRight},
               {"WAITING RETRY", Table::kRight},
               {"REDELIVERED", Table::kRight},
               {"DEAD-LETTERED", Table::kRight},
               {"TYPES"}});
  for (const bv1::GroupInfo& g : response.groups()) {
    table.AddRow({g.topic(), g.group(), absl::StrCat(g.members_size()),
                  absl::StrCat(g.committed_offset()), absl::StrCat(g.end_offset()),
                  absl::StrCat(g.lag()), absl::StrCat(g.in_flight()),
                  absl::StrCat(g.waiting_retry()), absl::StrCat(g.redelivered()),
                  absl::StrCat(g.dead_lettered()),
                  g.types().empty() ? "*" : Printable(absl::StrJoin(g.types(), ","))});
  }
  table.Render(ctx.out());
  return kExitOk;
}

}  // namespace

std::vector<Command> BrokerCommands() {
  return {
      {{"broker topics", "Lists topics: events, bytes, offsets, time range.", {}, {}, ""}, Topics},
      {{"broker groups",
        "Describes consumer groups: members, committed offset, lag, in flight, retries.",
        {},
        {{"topic", Flag::kValue, "TOPIC", "only groups of this topic"},
         {"group", Flag::kValue, "GROUP", "only this group"}},
        ""},
       Groups},
  };
}

}  // namespace relay::ctl
