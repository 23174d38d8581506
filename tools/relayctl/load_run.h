#ifndef RELAY_TOOLS_RELAYCTL_LOAD_RUN_H_
#define RELAY_TOOLS_RELAYCTL_LOAD_RUN_H_

// One run of order load, shared by `relayctl load` (one run) and `relayctl
// compare` (the same run through two order-services): places orders at a
// steady rate and follows each with WatchOrder to its end.
//
//   LoadOptions options;
//   if (int code = ReadLoadOptions(ctx, args, "load", &options); code != kExitOk) return code;
//   if (int code = ResolveLoadTargets(ctx, args, "load", &options); code != kExitOk) return code;
//   LoadResult result = RunLoad(ctx, ctx.endpoints().order, options);
//
// Order i is sent at start + i/rate, so a slow call never delays the next
// ones (no coordinated omission); calls use gRPC's callback API and the
// callbacks only count.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tools/relayctl/args.h"
#include "tools/relayctl/context.h"
#include "tools/relayctl/load_stats.h"

namespace relay::ctl {

struct LoadOptions {
  double rate = 0;  // Orders per second.
  absl::Duration duration;
  absl::Duration grace;  // After `duration`, how long orders get to end.
  int64_t max_orders = 0;
  int32_t quantity = 1;
  std::vector<std::string> customers;  // Not empty for RunLoad.
  std::vector<std::string> skus;       // Not empty for RunLoad.
  uint64_t seed = 0;                   // The same seed gives the same customer/sku sequence.
};

// The flags of the load's shape besides --rate and --duration, which each
// verb declares with its own defaults: --customers, --skus, --quantity,
// --max-orders, --grace, --seed.
std::vector<Flag> LoadShapeFlags();

// Reads --rate and --duration (`default_rate`/`default_duration` when not
// given) and the LoadShapeFlags() into `options`, without any call. Returns
// kExitOk, or kExitUsage after printing one line naming `path`.
int ReadLoadOptions(Context& ctx, const Args& args, absl::string_view path, double default_rate,
                    absl::Duration default_duration, LoadOptions* options);

// Fills options->customers and options->skus from --customers/--skus, else
// from every account payment-service has and every product
// inventory-service has. Returns kExitOk, or the exit code after printing
// one line (an unreachable service, or none to order).
int ResolveLoadTargets(Context& ctx, const Args& args, absl::string_view path,
                       LoadOptions* options);

struct LoadResult {
  LoadTally tally;
  absl::Duration elapsed;    // From the first order sent to the last one ended (or given up).
  bool interrupted = false;  // Ctrl-C cut the run short.
};

// Places orders through the order-service at `order_address` as `options`
// say and waits until every one ended, failed, or ran out of its grace.
// Arms Ctrl-C (ctx.ArmInterrupt()), which stops the run early. Prints
// nothing.
// REQUIRES: options.customers and options.skus are not empty.
LoadResult RunLoad(Context& ctx, const std::string& order_address, const LoadOptions& options);

// kExitOk when every order of `tally` ended without error. Otherwise
// prints one line "relayctl: <what>: ..." and returns kExitUnavailable when
// the order-service at `order_address` refused or timed out every order,
// kExitError for any error or order not ended in time.
int LoadExitCode(Context& ctx, absl::string_view what, const std::string& order_address,
                 const LoadTally& tally);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_LOAD_RUN_H_
