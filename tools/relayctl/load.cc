// relayctl load: places orders at a steady rate and follows each to its
// end, then reports outcomes and the placed -> terminal latency. The run
// itself is RunLoad (load_run.h), which `compare` shares.

#include <string>
#include <vector>

#include "tools/relayctl/commands.h"
#include "tools/relayctl/event_format.h"
#include "tools/relayctl/load_run.h"
#include "tools/relayctl/load_stats.h"

namespace relay::ctl {
namespace {

constexpr const char* kPath = "load";

int Load(Context& ctx, const Args& args) {
  if (!args.Has("rate") || !args.Has("duration")) {
    return ctx.UsageError(kPath, "--rate and --duration are required");
  }
  LoadOptions options;
  if (int code = ReadLoadOptions(ctx, args, kPath, 0, absl::ZeroDuration(), &options);
      code != kExitOk) {
    return code;
  }
  if (int code = ResolveLoadTargets(ctx, args, kPath, &options); code != kExitOk) return code;

  const LoadResult result = RunLoad(ctx, ctx.endpoints().order, options);
  if (ctx.json()) {
    ctx.out() << ToJson(
                     LoadReportJson(result.tally, options.rate, options.duration, result.elapsed),
                     true)
              << "\n";
  } else {
    PrintLoadReport(ctx.out(), result.tally, options.rate, options.duration, result.elapsed,
                    options.grace);
  }
  return LoadExitCode(ctx, kPath, ctx.endpoints().order, result.tally);
}

}  // namespace

std::vector<Command> LoadCommands() {
  std::vector<Flag> flags = {
      {"rate", Flag::kValue, "R", "orders per second (required)"},
      {"duration", Flag::kValue, "DURATION", "how long to place orders, e.g. 30s (required)"}};
  for (Flag& f : LoadShapeFlags()) flags.push_back(std::move(f));
  return {
      {{"load",
        "Places orders at a steady rate, follows each to its end, reports latency.",
        {},
        std::move(flags),
        "Order i is sent at start + i/R, whatever earlier calls are doing. Each order is\n"
        "followed with WatchOrder until CONFIRMED or CANCELLED. Prints counts by outcome\n"
        "and the latency from sending PlaceOrder to seeing the terminal state.\n"
        "Exit 0 when every order ended without error, 4 if order-service could not be\n"
        "reached at all, 1 otherwise. Ctrl-C stops early and still reports."},
       Load},
  };
}

}  // namespace relay::ctl
