#!/usr/bin/env python3
"""Where a confirmed order's time goes, hop by hop (bench/README.md).

Reads every event of the topics orders, inventory and payments from a
relay-broker through `relayctl events tail --json` and, for each order that
has order.created, stock.reserved, payment.captured and order.confirmed,
splits its time at two clocks each event carries:
  time          set by the service inside the transaction that emitted it
  publish_time  set by the broker when the event's commit is durable
Prints p50 / p90 / p99 of each hop in milliseconds.

  saga_bench --scenario=S2 --runs=1 --duration=5s --keep_data --temp_root=/tmp/keep
  relay-broker --listen=127.0.0.1:17070 --data_dir=/tmp/keep/<run>/relay-broker-*/data &
  bench/saga_hops.py --broker=127.0.0.1:17070 --relayctl=build/release/tools/relayctl/relayctl
"""

import argparse
import datetime
import json
import subprocess
import sys

TOPICS = ("orders", "inventory", "payments")
TYPES = ("order.created", "stock.reserved", "payment.captured", "order.confirmed")


def seconds(stamp):
    """An RFC 3339 UTC stamp with up to nanoseconds, as seconds since the epoch."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    return base.timestamp() + float("0." + (fraction or "0"))


def read_topic(relayctl, broker, topic):
    out = subprocess.run(
        [relayctl, "--broker=" + broker, "events", "tail", "--topic=" + topic,
         "--from-beginning", "--json"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit("relayctl events tail --topic=%s failed: %s" % (topic, out.stderr.strip()[:300]))
    return json.loads(out.stdout).get("events", [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="relay-broker HOST:PORT")
    parser.add_argument("--relayctl", default="relayctl", help="relayctl binary")
    args = parser.parse_args()

    by_key = {}
    for topic in TOPICS:
        for event in read_topic(args.relayctl, args.broker, topic):
            by_key.setdefault(event["key"], {})[event["type"]] = (
                seconds(event["time"]), seconds(event["publish_time"]))

    hops = {
        "order.created: time -> durable at the broker": [],
        "-> stock.reserved emitted (inventory)": [],
        "stock.reserved: time -> durable": [],
        "-> payment.captured emitted (payment)": [],
        "payment.captured: time -> durable": [],
        "later of the two durable -> order.confirmed emitted": [],
        "order.confirmed: time -> durable": [],
        "all: order.created time -> order.confirmed durable": [],
    }
    for events in by_key.values():
        if not all(t in events for t in TYPES):
            continue
        created, stock, payment, confirmed = (events[t] for t in TYPES)
        values = (created[1] - created[0], stock[0] - created[1], stock[1] - stock[0],
                  payment[0] - created[1], payment[1] - payment[0],
                  confirmed[0] - max(stock[1], payment[1]), confirmed[1] - confirmed[0],
                  confirmed[1] - created[0])
        for name, value in zip(hops, values):
            hops[name].append(value)

    orders = len(next(iter(hops.values())))
    if orders == 0:
        sys.exit("no confirmed order with all four events in topics " + ", ".join(TOPICS))
    print("%d confirmed orders; ms" % orders)
    for name, values in hops.items():
        values.sort()
        pick = lambda q: values[min(len(values) - 1, int(len(values) * q))] * 1e3
        print("  %-52s p50 %6.2f  p90 %6.2f  p99 %6.2f" % (name, pick(0.5), pick(0.9), pick(0.99)))


if __name__ == "__main__":
    main()
