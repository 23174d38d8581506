#ifndef RELAY_TOOLS_RELAYCTL_COMMANDS_H_
#define RELAY_TOOLS_RELAYCTL_COMMANDS_H_

// The verbs of relayctl, one list per file (order_cmd.cc, stock_cmd.cc, ...).
// Each command is a function of a Context and its parsed arguments that
// prints to ctx.out() and returns an exit code (context.h).

#include <functional>
#include <vector>

#include "tools/relayctl/args.h"
#include "tools/relayctl/context.h"

namespace relay::ctl {

struct Command {
  CommandSpec spec;  // spec.path is "group verb" or a single word.
  std::function<int(Context& ctx, const Args& args)> run;
};

std::vector<Command> OrderCommands();    // order place|get|list|watch|cancel
std::vector<Command> StockCommands();    // stock list|set
std::vector<Command> AccountCommands();  // account list|deposit
std::vector<Command> EventsCommands();   // events tail
std::vector<Command> TraceCommands();    // trace
std::vector<Command> BrokerCommands();   // broker topics|groups
std::vector<Command> HealthCommands();   // health
std::vector<Command> LoadCommands();     // load
std::vector<Command> CompareCommands();  // compare

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_COMMANDS_H_
