#!/usr/bin/python3
"""Relay from Python: list the catalog, place an order, watch it end.

    ./generate.sh && ./place_order.py [--customer c-alice] [--item KB-1:1 ...]

Talks to inventory-service (ListProducts) and order-service (PlaceOrder,
WatchOrder) over gRPC with stubs generated from ../../protos by
./generate.sh; over TLS with --tls-ca (and mutual TLS with --tls-cert and
--tls-key, as the compose stack needs: scripts/pki-export), else plaintext.
Exit codes follow relayctl's: 0 CONFIRMED, 1 error (the
service refused, or still PENDING after --wait-timeout), 2 usage, 4 a
service unreachable or silent, 5 CANCELLED.
"""

import argparse
import os
import sys
import uuid

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_CANCELLED = 0, 1, 2, 3, 4, 5
PROG = "place_order"
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(code, message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(code)


def excerpt(text, limit=40):
    """At most `limit` characters of user input, for error messages."""
    return text if len(text) <= limit else text[:limit] + "..."


try:
    import grpc
except ImportError:
    fail(EXIT_ERROR, "the grpc module is missing: run with /usr/bin/python3 after "
         "apt-get install python3-grpcio python3-protobuf")

sys.path.insert(0, os.path.join(HERE, "gen"))
try:
    from relay.events.v1 import order_events_pb2
    from relay.inventory.v1 import inventory_pb2, inventory_pb2_grpc
    from relay.order.v1 import order_pb2, order_pb2_grpc
except ImportError:
    fail(EXIT_ERROR, f"no generated stubs in {os.path.join(HERE, 'gen')}: run ./generate.sh first")

# Currencies whose minor unit is not a hundredth (as relayctl's money.cc).
ZERO_DIGITS = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
               "VND", "VUV", "XAF", "XOF", "XPF"}
THREE_DIGITS = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}


def money(m):
    """Money in minor units as text, e.g. 8900 USD -> '89.00 USD'. No floats."""
    digits = 0 if m.currency in ZERO_DIGITS else 3 if m.currency in THREE_DIGITS else 2
    sign = "-" if m.amount_minor < 0 else ""
    units, minor = divmod(abs(m.amount_minor), 10**digits)
    text = f"{units}.{minor:0{digits}d}" if digits else str(units)
    return f"{sign}{text} {m.currency}"


def status_name(status):
    return order_pb2.OrderStatus.Name(status).replace("ORDER_STATUS_", "")


def cause_name(cause):
    return order_events_pb2.CancelCause.Name(cause).replace("CANCEL_CAUSE_", "").lower()


def parse_item(text):
    sku, sep, qty = text.rpartition(":")
    if not sep or not sku:
        raise argparse.ArgumentTypeError(f'"{excerpt(text)}": expected SKU:QTY, e.g. KB-1:2')
    if not qty.isdigit() or not 1 <= int(qty) <= 1_000_000:
        raise argparse.ArgumentTypeError(
            f'"{excerpt(text)}": the quantity must be a whole number from 1 to 1000000')
    return order_pb2.PlaceOrderRequest.Item(sku=sku, quantity=int(qty))


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f'"{excerpt(text)}": expected seconds in (0, 3600]')
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like relayctl
        fail(EXIT_USAGE, f"{message} (see --help)")


def parse_args():
    p = Parser(prog="place_order.py", description=(
        "Lists Relay's catalog, places an order and watches it until it is CONFIRMED "
        "(exit 0) or CANCELLED (exit 5)."))
    p.add_argument("--order-addr", metavar="HOST:PORT",
                   default=os.environ.get("RELAY_ORDER_ADDR", "127.0.0.1:7071"),
                   help="order-service host:port (env RELAY_ORDER_ADDR, default 127.0.0.1:7071)")
    p.add_argument("--inventory-addr", metavar="HOST:PORT",
                   default=os.environ.get("RELAY_INVENTORY_ADDR", "127.0.0.1:7072"),
                   help="inventory-service host:port (env RELAY_INVENTORY_ADDR, "
                        "default 127.0.0.1:7072)")
    p.add_argument("--customer", metavar="ID", default="c-alice",
                   help="customer id (default c-alice)")
    p.add_argument("--item", action="append", type=parse_item, metavar="SKU:QTY",
                   help="an item; repeat for more (default KB-1:1)")
    p.add_argument("--key", default="",
                   help="idempotency key (default: a new one, so every run is a new order)")
    p.add_argument("--tls-cert", metavar="FILE", default=os.environ.get("RELAY_TLS_CERT", ""),
                   help="PEM client certificate, for mutual TLS; with --tls-key "
                        "(env RELAY_TLS_CERT)")
    p.add_argument("--tls-key", metavar="FILE", default=os.environ.get("RELAY_TLS_KEY", ""),
                   help="PEM private key of --tls-cert (env RELAY_TLS_KEY)")
    p.add_argument("--tls-ca", metavar="FILE", default=os.environ.get("RELAY_TLS_CA", ""),
                   help="PEM CA that the services' certificates chain to (env RELAY_TLS_CA; "
                        "default: the system's CAs when a client certificate is given, "
                        "else plaintext)")
    p.add_argument("--timeout", metavar="SECONDS", type=positive_seconds, default=10.0,
                   help="deadline of each call, in seconds (default 10)")
    p.add_argument("--wait-timeout", metavar="SECONDS", type=positive_seconds, default=60.0,
                   help="how long to watch for CONFIRMED or CANCELLED, in seconds (default 60)")
    args = p.parse_args()
    if not args.item:
        args.item = [parse_item("KB-1:1")]
    if bool(args.tls_cert) != bool(args.tls_key):
        fail(EXIT_USAGE, "--tls-cert and --tls-key go together (see --help)")
    return args


def read_pem(flag, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        fail(EXIT_USAGE, f"{flag} {excerpt(path, 120)}: {err.strerror}")


def channel_credentials(args):
    """TLS credentials from the --tls-* files; None (plaintext) without any."""
    if not (args.tls_cert or args.tls_ca):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem("--tls-ca", args.tls_ca) if args.tls_ca else None,
        private_key=read_pem("--tls-key", args.tls_key) if args.tls_key else None,
        certificate_chain=read_pem("--tls-cert", args.tls_cert) if args.tls_cert else None)


def open_channel(address, credentials):
    if credentials is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, credentials)


def rpc_failed(what, service, address, err, timeout):
    """Exits with one line for a failed call; never a traceback."""
    code = err.code()
    details = excerpt((err.details() or code.name).replace("\n", " "), 200)
    if code == grpc.StatusCode.UNAVAILABLE:
        fail(EXIT_UNAVAILABLE, f"{what}: cannot reach {service} at {address}: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        fail(EXIT_UNAVAILABLE, f"{what}: no answer from {service} at {address} within {timeout:g}s")
    fail(EXIT_NOT_FOUND if code == grpc.StatusCode.NOT_FOUND else EXIT_ERROR,
         f"{what}: {service} said {code.name}: {details}")


def print_catalog(products, address):
    print(f"catalog of inventory-service at {address}: {len(products)} products")
    rows = [("SKU", "NAME", "PRICE", "AVAILABLE")]
    rows += [(p.sku, p.name, money(p.price), str(p.available)) for p in products]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for sku, name, price, available in rows:
        print(f"  {sku:<{widths[0]}}  {name:<{widths[1]}}  "
              f"{price:>{widths[2]}}  {available:>{widths[3]}}")


def describe(order):
    """One line for a state of the order, e.g. 'PENDING: stock reserved'."""
    text = status_name(order.status)
    if order.status == order_pb2.ORDER_STATUS_CANCELLED:
        return f"{text}: {cause_name(order.cancel_cause)} ({excerpt(order.cancel_reason, 200)})"
    progress = [s for s, done in (("stock reserved", order.stock_reserved),
                                  ("payment captured", order.payment_captured)) if done]
    return f"{text}: {', '.join(progress)}" if progress else text


def watch(stub, order_id, args, shown):
    """Prints each change of the order until it ends; returns the last state.

    `shown` is the line printed last: WatchOrder starts with the order as it
    is now, which may still be that state, or already past more changes.
    """
    terminal = (order_pb2.ORDER_STATUS_CONFIRMED, order_pb2.ORDER_STATUS_CANCELLED)
    call = stub.WatchOrder(order_pb2.WatchOrderRequest(order_id=order_id),
                           timeout=args.wait_timeout)
    last = None
    try:
        for order in call:
            last = order
            line = describe(order)
            if line != shown:  # the stream may repeat a state; print changes only
                print(f"status {line}")
                shown = line
            if order.status in terminal:
                call.cancel()  # the server ends the stream now anyway; do not wait for it
                return order
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            state = status_name(last.status) if last else "not seen"
            fail(EXIT_ERROR, f"watch order {order_id}: still {state} after {args.wait_timeout:g}s")
        rpc_failed(f"watch order {order_id}", "order-service", args.order_addr, err, args.timeout)
    fail(EXIT_ERROR, f"watch order {order_id}: the stream ended before the order did")


def main():
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each status line as it happens, even in a pipe

    credentials = channel_credentials(args)
    with open_channel(args.inventory_addr, credentials) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        try:
            products = stub.ListProducts(inventory_pb2.ListProductsRequest(),
                                         timeout=args.timeout).products
        except grpc.RpcError as err:
            rpc_failed("list products", "inventory-service", args.inventory_addr, err, args.timeout)
    print_catalog(products, args.inventory_addr)

    request = order_pb2.PlaceOrderRequest(customer_id=args.customer, items=args.item,
                                          idempotency_key=args.key or f"py-{uuid.uuid4()}")
    with open_channel(args.order_addr, credentials) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        try:
            placed = stub.PlaceOrder(request, timeout=args.timeout)
        except grpc.RpcError as err:
            rpc_failed("place order", "order-service", args.order_addr, err, args.timeout)
        order = placed.order
        lines = ", ".join(f"{l.sku} x{l.quantity}" for l in order.lines)
        replayed = " (replayed: this key placed it before)" if placed.replayed else ""
        print(f"placed {order.order_id} for {order.customer_id}: {lines}, "
              f"total {money(order.total)}{replayed}")
        shown = describe(order)
        print(f"status {shown}")
        final = watch(stub, order.order_id, args, shown)

    print(f"order {final.order_id} {status_name(final.status)}")
    return EXIT_CANCELLED if final.status == order_pb2.ORDER_STATUS_CANCELLED else EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        fail(130, "interrupted")
