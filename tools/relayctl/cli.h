#ifndef RELAY_TOOLS_RELAYCTL_CLI_H_
#define RELAY_TOOLS_RELAYCTL_CLI_H_

// relayctl's entry point as a function: finds the verb, parses its flags
// (global ones included), resolves the endpoints and runs it.
//
//   std::ostringstream out, err;
//   int code = Run({"broker", "topics", "--broker", target}, Io{&out, &err});

#include <string>
#include <vector>

#include "tools/relayctl/context.h"

namespace relay::ctl {

// Runs relayctl with `argv` (the words after the program name) and returns
// its exit code. Endpoints come from --broker/--order/--inventory/--payment/
// --sync-order, else RELAY_BROKER_ADDR/RELAY_ORDER_ADDR/RELAY_INVENTORY_ADDR/
// RELAY_PAYMENT_ADDR/RELAY_ORDER_SYNC_ADDR (via io.getenv), else
// localhost:7070..7073 and localhost:7077.
int Run(const std::vector<std::string>& argv, const Io& io);

}  // namespace relay::ctl

#endif  // RELAY_TOOLS_RELAYCTL_CLI_H_
