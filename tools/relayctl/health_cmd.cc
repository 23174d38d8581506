// relayctl health: grpc.health.v1 on each endpoint. `health --service
// broker` is the compose healthcheck: exit 0 only when SERVING.

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/text.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/table.h"

namespace relay::ctl {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

struct Target {
  std::string name;
  std::string address;
};

struct Result {
  grpc::Status status;
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  absl::Duration latency;
};

Result Check(Context& ctx, const std::string& address) {
  auto stub = Health::NewStub(ctx.Channel(address));
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  HealthCheckRequest request;  // "": the server as a whole.
  HealthCheckResponse response;
  const absl::Time start = absl::Now();
  Result result;
  result.status = stub->Check(&call, request, &response);
  result.latency = absl::Now() - start;
  result.serving = response.status();
  return result;
}

int HealthCmd(Context& ctx, const Args& args) {
  std::vector<Target> targets = {{"broker", ctx.endpoints().broker},
                                 {"order", ctx.endpoints().order},
                                 {"inventory", ctx.endpoints().inventory},
                                 {"payment", ctx.endpoints().payment}};
  if (args.Has("service")) {
    const std::string only = args.Get("service");
    std::vector<Target> chosen;
    for (const Target& t : targets) {
      if (t.name == only) chosen.push_back(t);
    }
    if (chosen.empty()) {
      return ctx.UsageError("health",
                            absl::StrCat("--service ", Excerpt(only),
                                         ": expected broker, order, inventory or payment"));
    }
    targets = chosen;
  }
  // In parallel, so one unreachable service costs one timeout, not four.
  std::vector<std::future<Result>> futures;
  for (const Target& t : targets) {
    futures.push_back(std::async(std::launch::async,
                                 [&ctx, address = t.address] { return Check(ctx, address); }));
  }
  std::vector<Result> results;
  for (auto& f : futures) results.push_back(f.get());

  int code = kExitOk;
  std::vector<std::string> failed;
  google::protobuf::Value doc;
  auto* list = (*doc.mutable_struct_value()->mutable_fields())["services"].mutable_list_value();
  Table table({{"SERVICE"}, {"ADDRESS"}, {"STATUS"}, {"LATENCY", Table::kRight}, {"ERROR"}});
  for (size_t i = 0; i < targets.size(); ++i) {
    const Result& r = results[i];
    std::string status =
        r.status.ok() ? HealthCheckResponse::ServingStatus_Name(r.serving) : "UNREACHABLE";
    std::string error;
    if (!r.status.ok()) {
      const int rpc_code = ExitCodeFor(r.status);
      if (rpc_code != kExitUnavailable) status = "ERROR";
      error = r.status.error_message();
      if (code != kExitUnavailable)
        code = rpc_code == kExitUnavailable ? kExitUnavailable : kExitError;
    } else if (r.serving != HealthCheckResponse::SERVING && code == kExitOk) {
      code = kExitError;
    }
    if (status != "SERVING") failed.push_back(targets[i].name);
    table.AddRow({targets[i].name, targets[i].address, status, FormatDelta(r.latency),
                  error.empty() ? "-" : error});
    google::protobuf::Value item;
    auto& f = *item.mutable_struct_value()->mutable_fields();
    f["service"] = StringValue(targets[i].name);
    f["address"] = StringValue(targets[i].address);
    f["status"] = StringValue(status);
    f["latency_ms"] = NumberValue(absl::ToDoubleMilliseconds(r.latency));
    f["error"] = StringValue(error);
    *list->add_values() = std::move(item);
  }
  if (ctx.json()) {
    ctx.out() << ToJson(doc, true) << "\n";
  } else {
    table.Render(ctx.out());
  }
  if (!failed.empty()) {
    ctx.Fail(code, "health", absl::StrCat("not serving: ", absl::StrJoin(failed, ", ")));
  }
  return code;
}

}  // namespace

std::vector<Command> HealthCommands() {
  return {
      {{"health",
        "Checks grpc.health.v1 on the broker and the three services.",
        {},
        {{"service", Flag::kValue, "NAME", "check only broker, order, inventory or payment"}},
        "Exits 0 only if every checked service answers SERVING; 4 if one cannot be reached,\n"
        "1 if one answers NOT_SERVING. Use a short --timeout in healthchecks:\n"
        "  relayctl health --service broker --timeout 2s"},
       HealthCmd},
  };
}

}  // namespace relay::ctl
