// relayctl compare: the same short order load through the events
// order-service (--order) and then through a --flow=sync one
// (--sync-order), in one table with a column per flow
// (docs/EVENT-DRIVEN.md#against-a-running-stack). No faults: those are
// bench/flow_compare's.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/load_run.h"
#include "tools/relayctl/load_stats.h"

namespace relay::ctl {
namespace {

constexpr const char* kPath = "compare";
constexpr double kDefaultRate = 20;
constexpr absl::Duration kDefaultDuration = absl::Seconds(10);

// grpc.health.v1 Check of the server at `address` as a whole: fails at once
// when nothing listens there, rather than after a run's worth of orders.
grpc::Status Reachable(Context& ctx, const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(ctx.Channel(address));
  grpc::ClientContext call;
  ctx.SetDeadline(&call);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&call, {}, &response);
  if (status.ok() && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not SERVING");
  }
  return status;
}

int Compare(Context& ctx, const Args& args) {
  LoadOptions options;
  if (int code = ReadLoadOptions(ctx, args, kPath, kDefaultRate, kDefaultDuration, &options);
      code != kExitOk) {
    return code;
  }
  const std::string& events = ctx.endpoints().order;
  const std::string& sync = ctx.endpoints().sync_order;
  if (events == sync) {
    return ctx.UsageError(kPath, absl::StrCat("--order and --sync-order are both ", events));
  }
  // The sync order-service is the one usually not running: say how to start it.
  if (grpc::Status s = Reachable(ctx, sync); !s.ok()) {
    if (ExitCodeFor(s) != kExitUnavailable) return ctx.RpcFailed(kPath, sync, s);
    return ctx.Fail(kExitUnavailable, kPath,
                    absl::StrCat("no sync order-service at ", sync,
                                 ": start one with `scripts/compose --profile compare up -d "
                                 "order-service-sync`, or pass --sync-order HOST:PORT"));
  }
  if (grpc::Status s = Reachable(ctx, events); !s.ok()) {
    return ctx.RpcFailed(absl::StrCat(kPath, ": order-service (--order)"), events, s);
  }
  if (int code = ResolveLoadTargets(ctx, args, kPath, &options); code != kExitOk) return code;

  // One after the other, so neither run's load slows the other's.
  std::vector<FlowRun> runs;
  for (const auto& [flow, address] : {std::pair{"events", events}, std::pair{"sync", sync}}) {
    if (ctx.Interrupted()) break;
    LoadResult result = RunLoad(ctx, address, options);
    runs.push_back({flow, address, std::move(result.tally), result.elapsed, result.interrupted});
  }
  if (ctx.json()) {
    ctx.out() << ToJson(CompareReportJson(runs, options.rate, options.duration, options.grace),
                        true)
              << "\n";
  } else {
    PrintCompareReport(ctx.out(), runs, options.rate, options.duration, options.grace);
    if (runs.size() < 2) ctx.out() << "Ctrl-C: the sync run did not start.\n";
  }
  int code = kExitOk;
  for (const FlowRun& r : runs) {
    const int run_code = LoadExitCode(ctx, absl::StrCat(kPath, ": ", r.flow), r.address, r.tally);
    if (code != kExitUnavailable && run_code != kExitOk) code = run_code;
  }
  return code;
}

}  // namespace

std::vector<Command> CompareCommands() {
  std::vector<Flag> flags = {
      {"rate", Flag::kValue, "R", "orders per second, in each flow (default 20)"},
      {"duration", Flag::kValue, "DURATION",
       "how long to place orders in each flow (default 10s)"}};
  for (Flag& f : LoadShapeFlags()) flags.push_back(std::move(f));
  return {
      {{"compare",
        "The same short load through the events and the sync order-service, side by side.",
        {},
        std::move(flags),
        "Runs `load` twice with the same orders (one seed): through --order, an\n"
        "order-service with --flow=events, then through --sync-order, one with\n"
        "--flow=sync, both on the same broker, inventory and payment. Prints one table\n"
        "with a column per flow: orders placed, confirmed, cancelled by cause, errors by\n"
        "kind, not ended, placed -> end p50/p99, orders/s ended. Runs no faults; for those\n"
        "see bench/flow_compare and docs/EVENT-DRIVEN.md. Start the sync order-service\n"
        "with: scripts/compose --profile compare up -d order-service-sync\n"
        "Exit 0 when every order of both runs ended without error, 4 if an order-service\n"
        "cannot be reached, 1 otherwise. Ctrl-C stops early and reports the flows that ran."},
       Compare},
  };
}

}  // namespace relay::ctl
