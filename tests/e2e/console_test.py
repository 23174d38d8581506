#!/usr/bin/python3
"""relay-console end to end, in a real browser (docs/CONSOLE.md).

    tests/e2e/console_test.py [--bin DIR] [--screenshot PATH]

Starts relay-broker, the three services and relay-console as processes on
free 127.0.0.1 ports (data in a temp dir, each serving /metrics), then drives
Debian's chromium, headless, over the DevTools protocol on a pipe
(--remote-debugging-pipe: no port, no npm package):

  - the page loads with every peer reachable and the seeded catalog;
  - an order placed through the page's form reaches CONFIRMED on the page
    with its four events (order.created, stock.reserved, payment.captured,
    order.confirmed);
  - an out-of-stock order reaches CANCELLED with its reason;
  - the recent-orders table and the diagram show them;
  - a scrape of every process's /metrics before and after checks that the
    counters moved by exactly the events the test caused;
  - with payment-service stopped, the page says it is unreachable and goes
    on showing the rest;
  - no script error on the page.

--screenshot saves the page after the confirmed order (docs/images/console.png
is made this way). --bin is the build directory whose binaries run (default
build/dev). Everything started is stopped by PID at the end, also on failure;
the temp dir (logs) is kept on failure. Exit 0 when every check passed.
"""

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = time.monotonic()


def log(message):
    print(f"[console_test {time.monotonic() - T0:5.1f}s] {message}", flush=True)


class Failed(Exception):
    pass


def wait_for(what, condition, timeout=30.0, interval=0.1):
    """Polls condition() until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise Failed(f"{what}: not within {timeout:.0f}s" + (f" (last error: {last})" if last else ""))


# ---------------------------------------------------------------- processes --

class Stack:
    """The processes this test started, stopped by PID in reverse order."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, argv):
        path = os.path.join(self.tmp, name + ".log")
        out = open(path, "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs.append((name, proc))
        return proc

    def logged(self, name, pattern, proc, timeout=20.0):
        """The first match of `pattern` in NAME's log, waiting for it."""
        path = os.path.join(self.tmp, name + ".log")

        def find():
            if proc.poll() is not None:
                raise Failed(f"{name} exited ({proc.returncode}) before logging {pattern!r}; see {path}")
            with open(path, errors="replace") as f:
                m = re.search(pattern, f.read())
            return m.group(1) if m else None

        return wait_for(f"{name} logs {pattern!r}", find, timeout)

    def stop(self, proc, grace=10.0):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for _, proc in reversed(self.procs):
            self.stop(proc)

    def tails(self):
        for name, _ in self.procs:
            path = os.path.join(self.tmp, name + ".log")
            with open(path, errors="replace") as f:
                lines = f.readlines()[-12:]
            print(f"=== last lines of {path} ===", file=sys.stderr)
            sys.stderr.writelines(lines)


def serve(stack, name, argv):
    """Starts a Relay binary on free ports; (process, port, metrics port)."""
    proc = stack.start(name, argv + ["--metrics_listen=127.0.0.1:0"])
    metrics = int(stack.logged(name, r"metrics served .*port=(\d+)", proc))
    port = int(stack.logged(name, r" serving .*port=(\d+)", proc))
    return proc, port, metrics


# ------------------------------------------------------------------- HTTP --

def http(method, url, body=None, timeout=10.0):
    """(status, body text); HTTP errors are answers too."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    """{(name, frozenset(labels)): value} of one /metrics page."""
    status, text = http("GET", f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        raise Failed(f"GET /metrics on {port}: {status}")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise Failed(f"unparsable metrics line on {port}: {line[:120]!r}")
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def total(samples, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


# ---------------------------------------------------------------- browser --

class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe: the
    browser reads commands on its fd 3 and writes answers and events on fd 4,
    each a JSON message ended by a NUL byte."""

    def __init__(self, tmp):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise Failed("chromium is not installed (scripts/setup installs it)")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Above the child's 3 and 4, so the dup2s below cannot clobber them.
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def wire():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        argv = [exe, "--headless=new", "--remote-debugging-pipe", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp}/chromium",
                "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # chromium refuses root with its sandbox
        self.log = open(os.path.join(tmp, "chromium.log"), "wb")
        # Its shared-memory files (--disable-dev-shm-usage puts them in
        # TMPDIR) go to the test's temp dir, which is removed at the end.
        env = dict(os.environ, TMPDIR=tmp)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=wire, pass_fds=(3, 4),
                                     env=env)
        os.close(hi_r)
        os.close(hi_w)
        self.out = to_browser_w
        self.inp = from_browser_r
        self.buffer = b""
        self.next_id = 0
        self.session = None
        self.errors = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Runtime.enable")
        self.call("Log.enable")  # CSP violations, failed loads
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1400, "height": 1500, "deviceScaleFactor": 1, "mobile": False})

    def _message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.inp], [], [], left)[0]:
                raise Failed("chromium did not answer in time")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise Failed("chromium closed its pipe (see chromium.log)")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, timeout=30.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._message(deadline)
            if m.get("method") == "Runtime.exceptionThrown":
                d = m["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif m.get("method") == "Log.entryAdded" and m["params"]["entry"]["level"] == "error":
                entry = m["params"]["entry"]
                self.errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
            elif m.get("method") == "Runtime.consoleAPICalled" and m["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                            for a in m["params"]["args"]))
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise Failed(f"{method}: {m['error'].get('message')}")
                return m["result"]

    def js(self, expression):
        """The value of a JavaScript expression in the page."""
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise Failed(f"script error in {expression[:80]!r}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def until(self, what, expression, timeout=30.0):
        return wait_for(what, lambda: self.js(expression), timeout)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            os.close(self.out)
        except OSError:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------ checks --

PASSED = []


def check(name, ok, detail=""):
    if not ok:
        raise Failed(f"{name}" + (f": {detail}" if detail else ""))
    PASSED.append(name)
    log(f"ok: {name}")


PLACE = """(() => {
  document.querySelector('#customer').value = %s;
  document.querySelector('#items .sku').value = %s;
  document.querySelector('#items .quantity').value = '%d';
  document.querySelector('#place').click();
  return true;
})()"""

SHOWN = """(() => {
  const status = document.querySelector('#order-status').textContent;
  const rows = [...document.querySelectorAll('#timeline tbody tr')];
  return {id: document.querySelector('#order-id').textContent, status,
          reason: document.querySelector('#order-reason').textContent,
          types: rows.map((r) => r.children[4].textContent)};
})()"""


def place_and_follow(browser, customer, sku, quantity, status, last_type, previous_id):
    browser.js(PLACE % (json.dumps(customer), json.dumps(sku), quantity))
    return browser.until(
        f"the page shows the new order {status} with {last_type}",
        f"(() => {{ const s = {SHOWN}; return s.id !== {json.dumps(previous_id)} && "
        f"s.status === '{status}' && s.types.includes('{last_type}') ? s : null; }})()",
        timeout=60)


def run(args, tmp):
    bindir = os.path.abspath(args.bin)
    binaries = {
        "broker": f"{bindir}/broker/relay-broker",
        "inventory": f"{bindir}/services/inventory/inventory-service",
        "payment": f"{bindir}/services/payment/payment-service",
        "order": f"{bindir}/services/order/order-service",
        "console": f"{bindir}/tools/console/relay-console",
    }
    for b in binaries.values():
        if not os.access(b, os.X_OK):
            raise Failed(f"{b} is not an executable (build it, or pass --bin)")

    stack = Stack(tmp)
    browser = None
    try:
        _, broker, broker_m = serve(stack, "broker", [
            binaries["broker"], "--listen=127.0.0.1:0", f"--data_dir={tmp}/broker"])
        b = f"--broker=127.0.0.1:{broker}"
        _, inventory, inventory_m = serve(stack, "inventory", [
            binaries["inventory"], "--listen=127.0.0.1:0", b, f"--db={tmp}/inventory/inventory.db"])
        payment_proc, payment, payment_m = serve(stack, "payment", [
            binaries["payment"], "--listen=127.0.0.1:0", b, f"--db={tmp}/payment/payment.db"])
        _, order, order_m = serve(stack, "order", [
            binaries["order"], "--listen=127.0.0.1:0", b, f"--db={tmp}/order/orders.db"])
        _, console, console_m = serve(stack, "console", [
            binaries["console"], "--listen=127.0.0.1:0", b, f"--order=127.0.0.1:{order}",
            f"--inventory=127.0.0.1:{inventory}", f"--payment=127.0.0.1:{payment}"])
        url = f"http://127.0.0.1:{console}"
        log(f"stack up; console at {url}")

        # order-service takes orders once inventory's product.updated events
        # filled its catalog: an unknown sku is then INVALID_ARGUMENT (400),
        # before it UNAVAILABLE. Nothing is placed either way.
        wait_for("order-service has the catalog", lambda: http("POST", url + "/api/orders", {
            "customer_id": "c-alice", "items": [{"sku": "NO-SUCH", "quantity": 1}]})[0] == 400)

        ports = {"broker": broker_m, "inventory": inventory_m, "payment": payment_m,
                 "order": order_m, "console": console_m}

        # Quiet: no order pending, every group caught up and every outbox
        # empty (the catalog's product.updated events handled and acked).
        def settled():
            s = {name: scrape(port) for name, port in ports.items()}
            lag = total(s["broker"], "relay_broker_group_lag") + total(
                s["broker"], "relay_broker_group_in_flight")
            rows = sum(total(s[n], "relay_outbox_rows") for n in ("order", "inventory", "payment"))
            return s if lag == 0 and rows == 0 and total(
                s["order"], "relay_order_pending_orders") == 0 else None
        before = wait_for("the stack settles before the test's orders", settled)
        check("every process serves /metrics with its build info",
              all(total(s, "relay_build_info") == 1 for s in before.values()))

        browser = Browser(tmp)
        browser.call("Page.navigate", {"url": url})
        browser.until("the page shows four reachable peers and the catalog", """(() =>
            document.querySelectorAll('#peers li.ok').length === 4 &&
            document.querySelectorAll('#customer option').length > 0 &&
            document.querySelector('#items .sku') !== null &&
            document.querySelector('#items .sku').options.length > 0 &&
            document.querySelectorAll('#stock tbody tr').length > 0)()""")
        check("the page loads: four peers reachable, accounts and stock shown", True)
        # The error channels work: a console.error and a failed load are
        # seen (and then forgotten), so "no script error" below can fail.
        browser.js("console.error('console_test self-check'); fetch('/no-such-file').then(() => 1)")
        wait_for("the self-check errors to be seen", lambda: browser.js("1") and any(
            "self-check" in str(e) for e in browser.errors) and any(
            "404" in str(e) for e in browser.errors), timeout=10)
        browser.errors.clear()

        confirmed = place_and_follow(browser, "c-alice", "KB-1", 1, "CONFIRMED",
                                     "order.confirmed", "none yet")
        check("a placed order reaches CONFIRMED on the page with its four events",
              sorted(confirmed["types"]) == sorted(
                  ["order.created", "stock.reserved", "payment.captured", "order.confirmed"]),
              f"timeline {confirmed['types']}")
        browser.until("the diagram shows producers, topics and groups", """(() => {
            const t = [...document.querySelectorAll('#diagram text')].map((n) => n.textContent);
            return ['order-service', 'inventory-service', 'payment-service', 'orders',
                    'inventory', 'payments'].every((w) => t.includes(w)); })()""")
        check("the diagram shows the producers, topics and groups", True)
        browser.until("the order in the recent orders table",
                      f"document.querySelector('#orders tbody').textContent.includes("
                      f"{json.dumps(confirmed['id'])})")
        check("the confirmed order is in the recent orders table", True)
        if args.screenshot:
            browser.screenshot(args.screenshot)
            log(f"screenshot: {args.screenshot}")

        cancelled = place_and_follow(browser, "c-alice", "GPU-1", 2, "CANCELLED",
                                     "order.cancelled", confirmed["id"])
        check("an out-of-stock order reaches CANCELLED with its reason",
              "out_of_stock" in cancelled["reason"] and "stock.rejected" in cancelled["types"],
              f"reason {cancelled['reason']!r}, timeline {cancelled['types']}")
        browser.js("(() => { const f = document.querySelector('#status-filter');"
                   " f.value = 'cancelled'; f.dispatchEvent(new Event('change')); return 1; })()")
        browser.until("the filter shows only cancelled orders", f"""(() => {{
            const t = document.querySelector('#orders tbody').textContent;
            return t.includes({json.dumps(cancelled['id'])}) &&
                   !t.includes({json.dumps(confirmed['id'])}); }})()""")
        check("the status filter keeps the cancelled order only", True)

        after = wait_for("the pipeline settles (no lag, no outbox rows)", settled)

        # The events the test caused: every event of both orders' timelines.
        caused = {}
        for order_id in (confirmed["id"], cancelled["id"]):
            status, body = http("GET", f"{url}/api/orders/{order_id}")
            if status != 200:
                raise Failed(f"GET /api/orders/{order_id}: {status} {body[:200]}")
            for e in json.loads(body)["trace"]["events"]:
                caused[e["topic"]] = caused.get(e["topic"], 0) + 1
        log(f"events caused per topic: {caused}")

        def delta(process, name, **labels):
            return total(after[process], name, **labels) - total(before[process], name, **labels)

        check("order-service counted 2 placed, 1 confirmed, 1 cancelled out_of_stock",
              (delta("order", "relay_order_placed_total"),
               delta("order", "relay_order_ended_total", status="confirmed"),
               delta("order", "relay_order_ended_total", status="cancelled", reason="out_of_stock"),
               delta("order", "relay_order_ended_total")) == (2, 1, 1, 2))
        groups = {"orders": ["inventory-service", "payment-service"],
                  "inventory": ["order-service"], "payments": ["order-service"]}
        # A group whose members ask for some types only has the others
        # passed over (filtered, never delivered): each event is acked or
        # filtered, exactly once per group.
        acked = {}
        for topic in ("orders", "inventory", "payments"):
            n = caused.get(topic, 0)
            for g in groups[topic]:
                acked[(topic, g)] = delta("broker", "relay_broker_acks_total", topic=topic, group=g)
            settled_each = {g: acked[(topic, g)] + delta(
                "broker", "relay_broker_filtered_total", topic=topic, group=g)
                for g in groups[topic]}
            check(f"broker: {n} events appended to {topic}, each acked or filtered once per group",
                  delta("broker", "relay_broker_events_appended_total", topic=topic) == n and
                  all(v == n for v in settled_each.values()),
                  f"appended {delta('broker', 'relay_broker_events_appended_total', topic=topic)}, "
                  f"acked+filtered {settled_each}")
        owner = {"orders": "order", "inventory": "inventory", "payments": "payment"}
        for topic, process in owner.items():
            n = caused.get(topic, 0)
            check(f"{process}: its outbox published the {n} events on {topic}",
                  delta(process, "relay_outbox_published_total") == n,
                  f"published {delta(process, 'relay_outbox_published_total')}")
        consumed = {"inventory": acked[("orders", "inventory-service")],
                    "payment": acked[("orders", "payment-service")],
                    "order": acked[("inventory", "order-service")] +
                    acked[("payments", "order-service")]}
        for process, n in consumed.items():
            check(f"{process}: handled exactly the {n:.0f} events the broker delivered to it",
                  n > 0 and delta(process, "relay_service_events_total") == n and
                  delta(process, "relay_service_events_total", outcome="duplicate") == 0,
                  f"counted {delta(process, 'relay_service_events_total')}")

        # A service down: the page says which, and goes on.
        stack.stop(payment_proc)
        browser.until("the page reports payment-service unreachable", """(() =>
            !document.querySelector('#unreachable').hidden &&
            document.querySelector('#unreachable').textContent.includes('payment-service at') &&
            document.querySelectorAll('#peers li.down').length === 1 &&
            document.querySelectorAll('#stock tbody tr').length > 0)()""")
        check("with payment-service down the page names it and shows the rest", True)

        check("no script error on the page", not browser.errors, "; ".join(map(str, browser.errors)))
    except Failed:
        stack.tails()
        raise
    finally:
        if browser:
            browser.close()
        stack.stop_all()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "dev"),
                        help="build directory with the binaries (default build/dev)")
    parser.add_argument("--screenshot", help="save a PNG of the page after the confirmed order")
    args = parser.parse_args()
    if args.screenshot:
        args.screenshot = os.path.abspath(args.screenshot)
    tmp = tempfile.mkdtemp(prefix="relay-console-test.")
    try:
        run(args, tmp)
    except Failed as e:
        log(f"FAIL: {e}")
        print(f"console_test: {len(PASSED)} passed, 1 failed (logs in {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"console_test: {len(PASSED)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
