// relayctl events tail: the events of the broker's topics, as they are and
// as they arrive.

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/text.h"
#include "relay/broker/v1/broker.grpc.pb.h"
#include "tools/relayctl/broker_read.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"

namespace relay::ctl {
namespace {

namespace bv1 = relay::broker::v1;
using relay::events::v1::Event;

constexpr const char* kPath = "events tail";
constexpr int64_t kDefaultTailEvents = 20;
constexpr absl::Duration kPollInterval = absl::Milliseconds(200);

struct TopicRange {
  uint64_t first = 0;
  uint64_t end = 0;
};

// The topics to tail and where each one stands now.
grpc::Status Snapshot(Context& ctx, bv1::Broker::Stub& stub,
                      std::map<std::string, TopicRange>* out) {
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  bv1::ListTopicsResponse response;
  grpc::Status status = stub.ListTopics(&call, bv1::ListTopicsRequest(), &response);
  if (!status.ok()) return status;
  for (const bv1::TopicInfo& t : response.topics())
    (*out)[t.name()] = {t.first_offset(), t.end_offset()};
  return grpc::Status::OK;
}

void Print(Context& ctx, const std::vector<Event>& events, bool json_lines) {
  for (const Event& e : events) {
    if (json_lines) {
      ctx.out() << ToJson(EventToJsonValue(e), false) << "\n";
    } else {
      ctx.out() << FormatEventLine(e) << "\n";
    }
  }
  ctx.out().flush();
}

int Tail(Context& ctx, const Args& args) {
  const bool follow = args.Has("follow");
  const bool from_beginning = args.Has("from-beginning");
  absl::StatusOr<int64_t> limit = IntFlag(args, "limit", from_beginning ? 0 : kDefaultTailEvents,
                                          from_beginning ? 0 : 1, int64_t{1} << 40);
  if (!limit.ok()) return ctx.UsageError(kPath, limit.status());
  const std::string only_topic = args.Get("topic");
  if (args.Has("topic") && only_topic.empty()) return ctx.UsageError(kPath, "--topic is empty");

  auto stub = bv1::Broker::NewStub(ctx.Channel(ctx.endpoints().broker));
  std::map<std::string, TopicRange> topics;
  if (grpc::Status s = Snapshot(ctx, *stub, &topics); !s.ok()) {
    return ctx.RpcFailed("list topics", ctx.endpoints().broker, s);
  }
  if (!only_topic.empty()) {
    auto it = topics.find(only_topic);
    if (it == topics.end() && !follow) {
      return ctx.Fail(kExitNotFound, kPath, absl::StrCat("no topic ", Excerpt(only_topic)));
    }
    TopicRange range = it == topics.end() ? TopicRange{} : it->second;
    topics = {{only_topic, range}};
  }

  // What is there now: a window per topic that ends at the snapshot, so
  // that following resumes exactly where the window ends.
  std::vector<Event> events;
  std::map<std::string, uint64_t> next;
  for (const auto& [name, range] : topics) {
    next[name] = range.end;
    uint64_t start = range.first;
    uint64_t count = range.end - range.first;
    if (*limit > 0) count = std::min<uint64_t>(count, *limit);
    if (!from_beginning) start = range.end - count;
    if (count == 0) continue;
    bv1::ReadRequest request;
    request.set_topic(name);
    uint64_t unused;
    if (grpc::Status s = ReadToEnd(ctx, *stub, request, start, count, &events, &unused); !s.ok()) {
      return ctx.RpcFailed(absl::StrCat("read ", Excerpt(name)), ctx.endpoints().broker, s);
    }
  }
  SortByPublishTime(&events);
  if (*limit > 0 && events.size() > static_cast<uint64_t>(*limit)) {
    if (from_beginning) {
      events.resize(*limit);
    } else {
      events.erase(events.begin(), events.end() - *limit);
    }
  }

  if (!follow) {
    if (ctx.json()) {
      google::protobuf::Value doc;
      auto* list = (*doc.mutable_struct_value()->mutable_fields())["events"].mutable_list_value();
      for (const Event& e : events) *list->add_values() = EventToJsonValue(e);
      ctx.out() << ToJson(doc, true) << "\n";
    } else {
      Print(ctx, events, false);
    }
    return kExitOk;
  }

  Print(ctx, events, ctx.json());
  // From here on Ctrl-C ends the command (exit 0) instead of the process.
  ctx.ArmInterrupt();
  while (!ctx.Interrupted()) {
    const absl::Time wake = absl::Now() + kPollInterval;
    while (!ctx.Interrupted() && absl::Now() < wake) absl::SleepFor(absl::Milliseconds(20));
    if (ctx.Interrupted()) break;
    if (only_topic.empty()) {
      // Topics appear on their first publish: pick them up from their start.
      std::map<std::string, TopicRange> now;
      if (grpc::Status s = Snapshot(ctx, *stub, &now); !s.ok()) {
        return ctx.RpcFailed("list topics", ctx.endpoints().broker, s);
      }
      for (const auto& [name, range] : now) next.emplace(name, range.first);
    }
    std::vector<Event> batch;
    for (auto& [name, offset] : next) {
      bv1::ReadRequest request;
      request.set_topic(name);
      if (grpc::Status s = ReadToEnd(ctx, *stub, request, offset, 0, &batch, &offset); !s.ok()) {
        return ctx.RpcFailed(absl::StrCat("read ", Excerpt(name)), ctx.endpoints().broker, s);
      }
    }
    SortByPublishTime(&batch);
    Print(ctx, batch, ctx.json());
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> EventsCommands() {
  return {
      {{"events tail",
        "Prints the latest events of every topic (or one), one line each.",
        {},
        {{"topic", Flag::kValue, "TOPIC", "only this topic (e.g. orders, payments.dlq)"},
         {"from-beginning", Flag::kBool, "", "start at the oldest retained event"},
         {"follow", Flag::kBool, "", "keep printing new events until Ctrl-C", 'f'},
         {"limit", Flag::kValue, "N",
          "the last N events (default 20); with --from-beginning the first N (default all)"}},
        "Each line: publish time, topic, offset, type, key, correlation id and the payload's\n"
        "key fields decoded by type. --json prints one document, or with -f one JSON object\n"
        "per line. With -f, Ctrl-C ends the command with exit code 0."},
       Tail},
  };
}

}  // namespace relay::ctl
