#!/usr/bin/env bash
# End-to-end test of the client examples in other languages
# (examples/python, examples/node) against a real stack of our own.
#
#   tests/e2e/examples_test.sh
#
# Builds the release binaries if needed (an up-to-date build is a no-op),
# starts relay-broker and the three services as processes on free 127.0.0.1
# ports (port 0, read back from the port file and the "serving" log lines)
# with data in a temp dir, waits for `relayctl health` and for order-service
# to have the catalog, then runs each example: a CONFIRMED order (exit 0), a
# CANCELLED one (c-dave has 5.00 USD: exit 5) and an unreachable service
# (exit 4, one line on stderr), checking what they print and, with relayctl,
# what order-service recorded. Then a second stack with mutual TLS, as
# compose runs it (scripts/dev-pki certificates, the broker's policy): each
# example over TLS with the relayctl identity, and refused without a
# certificate (exit 4). Everything it started is stopped by PID on
# exit, also on failure; the temp dir (logs included) is kept on failure.
#
# Installs what the examples need when missing: the Debian packages
# python3-grpcio python3-grpc-tools python3-protobuf python3-pkg-resources,
# openssl, and nodejs npm when there is no node (apt-get); examples/node's
# node_modules (npm ci).
#
# RELAY_BIN_DIR=DIR uses the binaries under DIR (the layout of build/release)
# and builds nothing; RELAY_BUILD_JOBS (default 2) bounds the build.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=/usr/bin/python3   # Debian's, which has the python3-grpc* packages; not a pyenv one
START_TIMEOUT=20      # seconds for each process to serve, and for health
ORDER_TIMEOUT=60      # seconds for an example to see its order end

T0=$SECONDS
PASSED=0
FAILED=0
PIDS=()
TMP=""
log() { printf '[examples_test %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
# A failure of the set-up: nothing after it can run.
fatal() {
  printf '[examples_test %3ds] FAIL: %s\n' "$((SECONDS - T0))" "$*" >&2
  FAILED=$((FAILED + 1))
  exit 1
}

# The script's own stdout and stderr: a trap may run while a check's output
# is redirected to a file.
exec 3>&1 4>&2
cleanup() {
  local rc=$? pid deadline
  trap - EXIT INT TERM
  set +e
  exec 1>&3 2>&4
  if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then log "interrupted"; fi
  # Services first, then the broker (they drain into it); SIGTERM, then
  # SIGKILL whatever still runs after 10 s.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null; done
  deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "$TMP" ]; then
    if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
      for f in "$TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "=== last lines of $f ===" >&2
        tail -n 15 "$f" >&2
      done
      log "logs kept in $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ] && FAILED=1
  echo "examples_test: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
  exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ packages --
if ! "$PY" -c 'import grpc, google.protobuf, pkg_resources, grpc_tools.protoc' 2>/dev/null; then
  pkgs=(python3-grpcio python3-grpc-tools python3-protobuf python3-pkg-resources)
  log "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; } \
    || fatal "could not install ${pkgs[*]}"
fi
if ! command -v openssl >/dev/null; then
  log "installing openssl (scripts/dev-pki)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends openssl >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl >/dev/null; } \
    || fatal "could not install openssl"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; } \
    || fatal "node (>= 18) and npm are needed for examples/node; installing nodejs npm failed"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
  || fatal "examples/node needs node >= 18, this is $(node --version)"
log "npm ci in examples/node"
(cd examples/node && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  || fatal "npm ci in examples/node failed"
log "generating the Python stubs"
timeout 60 examples/python/generate.sh >/dev/null || fatal "examples/python/generate.sh failed"

# -------------------------------------------------------------- binaries --
if [ -n "${RELAY_BIN_DIR:-}" ]; then
  BIN=$RELAY_BIN_DIR
else
  BIN=$ROOT/build/release
  t=$SECONDS
  build_log=$(mktemp "${TMPDIR:-/tmp}/relay-examples-build.XXXXXX")
  build_failed() {
    tail -n 30 "$build_log" >&2
    fatal "$1 failed (the whole output: $build_log)"
  }
  if [ ! -f "$BIN/CMakeCache.txt" ]; then
    timeout 300 cmake --preset release >"$build_log" 2>&1 || build_failed "cmake --preset release"
  fi
  log "cmake --build --preset release (the five binaries; a no-op when up to date)"
  timeout 3600 cmake --build --preset release --parallel "${RELAY_BUILD_JOBS:-2}" \
    --target relay-broker order-service inventory-service payment-service relayctl \
    >>"$build_log" 2>&1 || build_failed "cmake --build --preset release"
  rm -f "$build_log"
  log "binaries ready in $((SECONDS - t))s"
fi
BROKER=$BIN/broker/relay-broker
ORDER=$BIN/services/order/order-service
INVENTORY=$BIN/services/inventory/inventory-service
PAYMENT=$BIN/services/payment/payment-service
RELAYCTL=$BIN/tools/relayctl/relayctl
for b in "$BROKER" "$ORDER" "$INVENTORY" "$PAYMENT" "$RELAYCTL"; do
  [ -x "$b" ] || fatal "$b is not an executable"
done

# ----------------------------------------------------------------- stack --
TMP=$(mktemp -d "${TMPDIR:-/tmp}/relay-examples.XXXXXX")

# start NAME BINARY ARGS...: runs it in the background (its PID in PIDS and
# LAST_PID), logging to $TMP/NAME.log.
start() {
  local name=$1
  shift
  : >"$TMP/$name.log"   # there before serving_port reads it
  "$@" </dev/null >>"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# serving_port NAME: the port that NAME, started last, logged in its "serving"
# line, waiting at most START_TIMEOUT seconds; fails if it exits first.
serving_port() {
  local name=$1 pid=$LAST_PID deadline=$((SECONDS + START_TIMEOUT)) port
  while :; do
    port=$(sed -n 's/.* serving .* port=\([0-9][0-9]*\).*/\1/p' "$TMP/$name.log" | head -n 1)
    [ -n "$port" ] && { echo "$port"; return 0; }
    kill -0 "$pid" 2>/dev/null || fatal "$name exited before serving (see $TMP/$name.log)"
    [ "$SECONDS" -lt "$deadline" ] || fatal "$name did not serve within ${START_TIMEOUT}s"
    sleep 0.1
  done
}

# start_stack TAG [PKI]: relay-broker and the three services, logs and data
# under $TMP with TAG in their names; with PKI (a scripts/dev-pki directory),
# mutual TLS: each binary with its own certificate, the broker with
# broker/policy.conf, and relayctl (ctl) as the relayctl identity. Sets
# BROKER_ADDR ORDER_ADDR INVENTORY_ADDR PAYMENT_ADDR and CTL_TLS, and waits
# until every service is healthy and order-service has the catalog.
start_stack() {
  local tag=$1 pki=${2:-}
  tls() { [ -z "$pki" ] || echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }
  local policy=()
  CTL_TLS=()
  if [ -n "$pki" ]; then
    policy=(--policy="$ROOT/broker/policy.conf")
    CTL_TLS=(--tls-cert "$pki/relayctl.crt" --tls-key "$pki/relayctl.key" --tls-ca "$pki/ca.crt")
  fi
  # (tls's output is split into flags on purpose: the paths have no spaces.)
  # shellcheck disable=SC2046
  start "${tag}broker" "$BROKER" --listen=127.0.0.1:0 --data_dir="$TMP/${tag}broker" \
    --port_file="$TMP/${tag}broker.port" $(tls broker) "${policy[@]}"
  BROKER_ADDR=127.0.0.1:$(serving_port "${tag}broker")
  [ "$(cat "$TMP/${tag}broker.port")" = "${BROKER_ADDR#*:}" ] || fatal "the broker's port file and log disagree"
  # Inventory first: it seeds the catalog that order-service learns from its events.
  # shellcheck disable=SC2046
  start "${tag}inventory" "$INVENTORY" --listen=127.0.0.1:0 --broker="$BROKER_ADDR" \
    --db="$TMP/${tag}inventory/inventory.db" $(tls inventory-service)
  INVENTORY_ADDR=127.0.0.1:$(serving_port "${tag}inventory")
  # shellcheck disable=SC2046
  start "${tag}payment" "$PAYMENT" --listen=127.0.0.1:0 --broker="$BROKER_ADDR" \
    --db="$TMP/${tag}payment/payment.db" $(tls payment-service)
  PAYMENT_ADDR=127.0.0.1:$(serving_port "${tag}payment")
  mkdir -p "$TMP/${tag}order"
  # shellcheck disable=SC2046
  start "${tag}order" "$ORDER" --listen=127.0.0.1:0 --broker="$BROKER_ADDR" \
    --db="$TMP/${tag}order/orders.db" $(tls order-service)
  ORDER_ADDR=127.0.0.1:$(serving_port "${tag}order")
  log "stack${pki:+ (mutual TLS)}: broker $BROKER_ADDR, order $ORDER_ADDR, inventory $INVENTORY_ADDR, payment $PAYMENT_ADDR"

  local deadline=$((SECONDS + START_TIMEOUT))
  until ctl health >"$TMP/${tag}health.out" 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$TMP/${tag}health.out" >&2
      fatal "not healthy within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
  # SERVING is not enough: order-service prices orders from the catalog that
  # reaches it as product.updated events; until then a sku is unknown to it.
  catalog_has() {
    local sku
    for sku in "$@"; do grep -F "catalog updated sku=$sku " "$TMP/${tag}order.log" >/dev/null || return 1; done
  }
  deadline=$((SECONDS + START_TIMEOUT))
  until catalog_has KB-1 MS-1; do
    [ "$SECONDS" -lt "$deadline" ] \
      || fatal "order-service has no KB-1 and MS-1 in its catalog after ${START_TIMEOUT}s"
    sleep 0.2
  done
  log "healthy, catalog in order-service"
}

ctl() {
  timeout 30 "$RELAYCTL" "$@" --broker "$BROKER_ADDR" --order "$ORDER_ADDR" \
    --inventory "$INVENTORY_ADDR" --payment "$PAYMENT_ADDR" --timeout 2s "${CTL_TLS[@]}"
}

CTL_TLS=()
start_stack ""

# --------------------------------------------------------------- checks --
# run_example OUT LANG ARGS...: runs the example (stdout OUT.out, stderr
# OUT.err) and sets RC.
run_example() {
  local out=$1 lang=$2
  shift 2
  RC=0
  case $lang in
    python) timeout "$((ORDER_TIMEOUT + 30))" "$PY" examples/python/place_order.py "$@" ;;
    node) timeout "$((ORDER_TIMEOUT + 30))" node examples/node/place_order.js "$@" ;;
  esac >"$TMP/$out.out" 2>"$TMP/$out.err" </dev/null || RC=$?
}

# One check: its failures are collected, then it counts as passed or failed.
PROBLEMS=()
problem() { PROBLEMS+=("$*"); }
finish_check() {
  local name=$1 out=$2 p
  if [ ${#PROBLEMS[@]} -eq 0 ]; then
    PASSED=$((PASSED + 1))
    log "ok   $name"
  else
    FAILED=$((FAILED + 1))
    log "FAIL $name"
    for p in "${PROBLEMS[@]}"; do echo "       $p" >&2; done
    echo "       --- stdout ($TMP/$out.out)" >&2
    head -c 4000 "$TMP/$out.out" | sed 's/^/       /' >&2
    echo "       --- stderr ($TMP/$out.err)" >&2
    head -c 4000 "$TMP/$out.err" | sed 's/^/       /' >&2
  fi
  PROBLEMS=()
}
has_line() { grep -E -- "$2" "$1" >/dev/null; }
expect_line() { has_line "$TMP/$1.out" "$2" || problem "stdout has no line matching /$2/"; }

# The order id in "placed ORDER for ...".
placed_id() { sed -n 's/^placed \(ord-[0-9a-z]*\) for .*/\1/p' "$TMP/$1.out" | head -n 1; }

# The status order-service recorded for ORDER (relayctl order get).
recorded_status() { ctl order get "$1" 2>/dev/null | sed -n 's/^status  *\([A-Z]*\).*/\1/p'; }

# check_ended NAME LANG CUSTOMER TOTAL STATUS EXPECTED_RC LAST_STATUS_RE ITEM_TEXT -- ARGS...
check_ended() {
  local name=$1 lang=$2 customer=$3 total=$4 status=$5 want_rc=$6 last_re=$7 items=$8
  shift 9
  local out="$lang-$status" id first
  run_example "$out" "$lang" "$@"
  [ "$RC" -eq "$want_rc" ] || problem "exit $RC, expected $want_rc"
  [ ! -s "$TMP/$out.err" ] || problem "stderr is not empty"
  expect_line "$out" "^catalog of inventory-service at $INVENTORY_ADDR: 10 products\$"
  expect_line "$out" '^  SKU +NAME +PRICE +AVAILABLE$'
  expect_line "$out" '^  KB-1 +Mechanical keyboard +89\.00 USD +[0-9]+$'
  expect_line "$out" "^placed ord-[0-9a-z]+ for $customer: $items, total $total\$"
  first=$(grep -m1 '^status ' "$TMP/$out.out" || true)
  [ "$first" = "status PENDING" ] || problem "the first status line is '$first', expected 'status PENDING'"
  expect_line "$out" "$last_re"
  id=$(placed_id "$out")
  if [ -z "$id" ]; then
    problem "no order id in the placed line"
  else
    [ "$(tail -n 1 "$TMP/$out.out")" = "order $id $status" ] \
      || problem "the last line is '$(tail -n 1 "$TMP/$out.out")', expected 'order $id $status'"
    local recorded
    recorded=$(recorded_status "$id")
    [ "$recorded" = "$status" ] || problem "order-service has $id as '$recorded', expected $status"
  fi
  # Each status line differs from the one before (changes only).
  if ! awk '/^status /{ if ($0 == prev) exit 1; prev = $0 }' "$TMP/$out.out"; then
    problem "a status line repeats the previous one"
  fi
  finish_check "$name" "$out"
}

# check_unreachable NAME LANG SERVICE ARGS...: exit 4 and one short line, no trace.
check_unreachable() {
  local name=$1 lang=$2 service=$3
  shift 3
  local out="$lang-unreachable-$service"
  run_example "$out" "$lang" "$@"
  [ "$RC" -eq 4 ] || problem "exit $RC, expected 4"
  [ "$(wc -l <"$TMP/$out.err")" -eq 1 ] || problem "stderr has $(wc -l <"$TMP/$out.err") lines, expected 1"
  has_line "$TMP/$out.err" "^place_order: .*cannot reach $service at 127\.0\.0\.1:1: " \
    || problem "stderr does not say that $service at 127.0.0.1:1 cannot be reached"
  [ "$(wc -c <"$TMP/$out.err")" -le 400 ] || problem "the error line is longer than 400 bytes"
  ! has_line "$TMP/$out.err" 'Traceback|^ +at |Error: [A-Z_]+ at ' || problem "a stack trace on stderr"
  finish_check "$name" "$out"
}

DEAD=127.0.0.1:1   # nothing listens on port 1
CONFIRMED_RE='^status CONFIRMED: stock reserved, payment captured$'
DECLINED_RE='^status CANCELLED: payment_declined \(payment declined: insufficient funds: balance 5\.00 USD, order 89\.00 USD\)$'

# The addresses from the environment (the defaults' way) ...
export RELAY_ORDER_ADDR=$ORDER_ADDR RELAY_INVENTORY_ADDR=$INVENTORY_ADDR
check_ended "python: c-alice KB-1:1 is CONFIRMED, exit 0 (addresses from env)" \
  python c-alice "89.00 USD" CONFIRMED 0 "$CONFIRMED_RE" "KB-1 x1" -- --customer c-alice --item KB-1:1
check_ended "node: c-alice KB-1:2 MS-1:1 is CONFIRMED, exit 0 (addresses from env)" \
  node c-alice "203.00 USD" CONFIRMED 0 "$CONFIRMED_RE" "KB-1 x2, MS-1 x1" -- \
  --customer c-alice --item KB-1:2 --item MS-1:1
# ... and from the flags, which win over a dead address in the environment.
export RELAY_ORDER_ADDR=$DEAD RELAY_INVENTORY_ADDR=$DEAD
check_ended "python: c-dave (5.00 USD) is CANCELLED, exit 5 (flags over env)" \
  python c-dave "89.00 USD" CANCELLED 5 "$DECLINED_RE" "KB-1 x1" -- \
  --customer c-dave --order-addr "$ORDER_ADDR" --inventory-addr "$INVENTORY_ADDR"
check_ended "node: c-dave (5.00 USD) is CANCELLED, exit 5 (flags over env)" \
  node c-dave "89.00 USD" CANCELLED 5 "$DECLINED_RE" "KB-1 x1" -- \
  --customer c-dave --order-addr "$ORDER_ADDR" --inventory-addr "$INVENTORY_ADDR"
unset RELAY_ORDER_ADDR RELAY_INVENTORY_ADDR

for lang in python node; do
  check_unreachable "$lang: inventory-service unreachable is exit 4 and one line" \
    "$lang" inventory-service --inventory-addr "$DEAD" --order-addr "$ORDER_ADDR"
  check_unreachable "$lang: order-service unreachable is exit 4 and one line" \
    "$lang" order-service --inventory-addr "$INVENTORY_ADDR" --order-addr "$DEAD"
done

# What the examples did, seen by the services: Alice paid 89.00 + 203.00.
out=accounts
ctl account list >"$TMP/$out.out" 2>"$TMP/$out.err" || problem "relayctl account list failed"
has_line "$TMP/$out.out" '^c-alice +Alice +708\.00 USD$' || problem "c-alice does not have 1000.00 - 292.00 = 708.00 USD"
has_line "$TMP/$out.out" '^c-dave +Dave +5\.00 USD$' || problem "c-dave does not still have 5.00 USD"
finish_check "payment-service charged the confirmed orders only" "$out"

# ------------------------------------------------------------ mutual TLS --
# A second stack as compose runs it: certificates from scripts/dev-pki, each
# binary with its own, the broker with its policy. The examples connect with
# the relayctl identity (from the environment for one, flags for the other),
# and without a certificate they are refused.
log "scripts/dev-pki for a stack with mutual TLS"
timeout 60 scripts/dev-pki --dir "$TMP/pki" >/dev/null || fatal "scripts/dev-pki failed"
start_stack tls- "$TMP/pki"
export RELAY_TLS_CERT=$TMP/pki/relayctl.crt RELAY_TLS_KEY=$TMP/pki/relayctl.key RELAY_TLS_CA=$TMP/pki/ca.crt
export RELAY_ORDER_ADDR=$ORDER_ADDR RELAY_INVENTORY_ADDR=$INVENTORY_ADDR
check_ended "python over mutual TLS: c-alice KB-1:1 is CONFIRMED (certificates from env)" \
  python c-alice "89.00 USD" CONFIRMED 0 "$CONFIRMED_RE" "KB-1 x1" -- --customer c-alice --item KB-1:1
unset RELAY_TLS_CERT RELAY_TLS_KEY RELAY_TLS_CA
check_ended "node over mutual TLS: c-dave is CANCELLED, exit 5 (certificates from flags)" \
  node c-dave "89.00 USD" CANCELLED 5 "$DECLINED_RE" "KB-1 x1" -- --customer c-dave \
  --tls-cert "$TMP/pki/relayctl.crt" --tls-key "$TMP/pki/relayctl.key" --tls-ca "$TMP/pki/ca.crt"
for lang in python node; do
  out="$lang-plaintext-to-tls"
  run_example "$out" "$lang" --customer c-alice
  [ "$RC" -eq 4 ] || problem "exit $RC, expected 4"
  has_line "$TMP/$out.err" "^place_order: list products: cannot reach inventory-service at $INVENTORY_ADDR: " \
    || problem "stderr does not say that inventory-service cannot be reached"
  [ "$(wc -l <"$TMP/$out.err")" -eq 1 ] || problem "stderr has $(wc -l <"$TMP/$out.err") lines, expected 1"
  finish_check "$lang without a certificate against mutual TLS: refused, exit 4" "$out"
done
unset RELAY_ORDER_ADDR RELAY_INVENTORY_ADDR

log "done in $((SECONDS - T0))s"
