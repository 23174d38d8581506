#!/usr/bin/env bash
# End-to-end test of the compose setup: the real image, the four services in
# containers, relayctl from `compose run`.
#
#   tests/e2e/compose_test.sh
#
# Brings the stack up (building the image), waits until every service is
# healthy, with mutual TLS on: the pki service made the certificates, every
# binary uses its own, no key is in the image, the CA's key is out of the
# services' reach, a client without a certificate or with one from another
# CA is refused, payment-service's identity is refused the broker's admin
# RPCs, and the client examples place orders over TLS with the certificate
# scripts/pki-export gives. Then it checks the saga's outcomes (confirmed,
# out of stock, declined, customer cancel) with `order get --json` and in
# each service's logs; that orders placed while payment-service is stopped
# stay PENDING and complete once it is back; that restarting the broker
# under load loses nothing; that two payment-service replicas share the work; and that a
# policy reload (SIGHUP) and renewed certificates (pki --renew) take effect
# while orders keep being CONFIRMED. Prints the build time, the time to
# healthy and the image size. The stack is always taken down with its
# volumes at the end, also on failure.
#
# It runs as its own compose project (COMPOSE_PROJECT_NAME, default
# relay-e2e) on host ports RELAY_BROKER_PORT/RELAY_ORDER_PORT/
# RELAY_INVENTORY_PORT/RELAY_PAYMENT_PORTS (default 17070/17071/17072/
# 17073-17076), so a stack already running from this directory is left alone.
# Compose is scripts/compose: v2 or 1.29, whichever is installed, with BuildKit.
# RELAY_E2E_COLD=1 builds without the layer cache (a cold build).
# Needs root where Docker is not installed yet (scripts/docker-engine).
set -euo pipefail

cd "$(dirname "$0")/../.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-relay-e2e}
export RELAY_BROKER_PORT=${RELAY_BROKER_PORT:-17070}
export RELAY_ORDER_PORT=${RELAY_ORDER_PORT:-17071}
export RELAY_INVENTORY_PORT=${RELAY_INVENTORY_PORT:-17072}
export RELAY_PAYMENT_PORTS=${RELAY_PAYMENT_PORTS:-17073-17076}
export RELAY_ORDER_SYNC_PORT=${RELAY_ORDER_SYNC_PORT:-17077}
export RELAY_CONSOLE_PORT=${RELAY_CONSOLE_PORT:-18080}
COLD=${RELAY_E2E_COLD:-0}
BUILD_TIMEOUT=${RELAY_E2E_BUILD_TIMEOUT:-3600}   # a cold build on 2 cores takes a while
HEALTHY_TIMEOUT=${RELAY_E2E_HEALTHY_TIMEOUT:-120}
ORDER_TIMEOUT=${RELAY_E2E_ORDER_TIMEOUT:-60}
SERVICES=(broker order-service inventory-service payment-service)

T0=$SECONDS
log() { printf '[compose_test %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() {
  printf '[compose_test %4ds] FAIL: %s\n' "$((SECONDS - T0))" "$*" >&2
  exit 1
}

# ---------------------------------------------------------------- engine --
scripts/docker-engine
scripts/docker-base-image
command -v jq >/dev/null 2>&1 || {
  log "installing jq"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null; }
}

COMPOSE=(scripts/compose)
compose() { "${COMPOSE[@]}" "$@"; }
log "using: ${COMPOSE[*]} ($(compose version --short 2>/dev/null || compose version | head -n 1)), project $COMPOSE_PROJECT_NAME"

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  if [ "$rc" -ne 0 ]; then
    echo "=== compose ps ===" >&2
    timeout 60 "${COMPOSE[@]}" ps -a >&2
    echo "=== last log lines ===" >&2
    timeout 60 "${COMPOSE[@]}" logs --no-color --tail=40 >&2
  fi
  [ -z "${WORK:-}" ] || rm -rf "$WORK"
  log "cleanup: ${COMPOSE[*]} down -v"
  timeout 180 "${COMPOSE[@]}" --profile tools down -v --remove-orphans --timeout 20 >/dev/null 2>&1 \
    || timeout 180 "${COMPOSE[@]}" down -v --remove-orphans --timeout 20
  if [ "$rc" -eq 0 ]; then log "PASS"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
# Interrupted or killed (timeout): still a failure, and still cleaned up.
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until "$@" succeeds, at most TIMEOUT seconds: wait_until DESC TIMEOUT CMD...
wait_until() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for $desc"
    sleep 1
  done
}

# relayctl in a fresh container of the relayctl service (profile tools).
ctl() { timeout 120 "${COMPOSE[@]}" run --rm -T relayctl --timeout 10s "$@" </dev/null; }

# Container ids of a service: running ones, or all with -a. By label, so
# compose v1 and v2 (whose `ps` differ on stopped containers) agree.
cids() {
  local all=()
  if [ "$1" = -a ]; then all=(-a); shift; fi
  docker ps -q "${all[@]}" --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False"
}

# SIGTERM (compose stop) ended every container of SERVICE with exit code 0
# after the binary logged "stopped".
stopped_cleanly() {
  local svc=$1 id code
  for id in $(cids -a "$svc"); do
    [ "$(docker inspect -f '{{.State.Running}}' "$id")" = false ] || fail "$svc ${id:0:12} still runs"
    code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
    [ "$code" = 0 ] || fail "$svc ${id:0:12} exited $code on SIGTERM"
    # (grep reads all its input: no `grep -q`, whose early exit would fail
    # the pipe under pipefail.)
    docker logs --tail 5 "$id" 2>&1 | grep -E "INFO (relay-)?$svc stopped" >/dev/null \
      || fail "$svc ${id:0:12} did not log that it stopped"
  done
  log "$svc: SIGTERM, clean exit 0"
}

all_healthy() {
  local svc id ids status
  for svc in "$@"; do
    ids=$(cids "$svc")
    [ -n "$ids" ] || return 1
    for id in $ids; do
      status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id" 2>/dev/null) || return 1
      [ "$status" = healthy ] || return 1
    done
  done
}

# The whole order as JSON.
order_json() { ctl order get "$1" --json; }
order_field() { order_json "$1" | jq -r ".$2"; }

is_terminal() {
  local s
  s=$(order_field "$1" status) || return 1
  [ "$s" = ORDER_STATUS_CONFIRMED ] || [ "$s" = ORDER_STATUS_CANCELLED ]
}

# Places an order and prints its id: place CUSTOMER SKU:QTY [more flags]
place() {
  local customer=$1 item=$2
  shift 2
  ctl order place --customer "$customer" --item "$item" --json "$@" | jq -er '.order.order_id'
}

# expect_order ID STATUS [CAUSE]: order get --json says so.
expect_order() {
  local id=$1 status=$2 cause=${3:-}
  local json
  json=$(order_json "$id") || fail "order get $id failed"
  [ "$(jq -r .status <<<"$json")" = "ORDER_STATUS_$status" ] \
    || fail "order $id: expected $status, got $(jq -c '{status,cancel_cause,cancel_reason}' <<<"$json")"
  if [ -n "$cause" ]; then
    [ "$(jq -r .cancel_cause <<<"$json")" = "CANCEL_CAUSE_$cause" ] \
      || fail "order $id: expected cause $cause, got $(jq -c '{status,cancel_cause,cancel_reason}' <<<"$json")"
  fi
  log "order $id: $status${cause:+ ($cause)}"
}

# One of the lines of SERVICE's logs says PATTERN (fixed string). The logs
# are read whole before grep runs: with pipefail, `... | grep -q` fails when
# grep's early exit cuts the writer off (SIGPIPE) on a long log.
log_has() {
  local logs
  logs=$(compose logs --no-color "$1" 2>/dev/null) || return 1
  grep -F -- "$2" <<<"$logs" >/dev/null
}
# Every PATTERN in SERVICE's logs: logs_have SERVICE PATTERN...
logs_have() {
  local svc=$1 logs p
  shift
  logs=$(compose logs --no-color "$svc" 2>/dev/null) || return 1
  for p in "$@"; do
    grep -F -- "$p" <<<"$logs" >/dev/null || { MISSING=$p; return 1; }
  done
}
expect_logs() {
  local svc=$1 deadline=$((SECONDS + 30))
  shift
  MISSING=""
  until logs_have "$svc" "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no '$MISSING' in the logs of $svc after 30s"
    sleep 1
  done
  log "$svc logs: $# expected lines"
}

# ----------------------------------------------------------------- build --
log "clean slate: down -v for project $COMPOSE_PROJECT_NAME"
timeout 180 "${COMPOSE[@]}" --profile tools down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true

build_flags=()
[ "$COLD" = 1 ] && build_flags+=(--no-cache)
log "build$([ "$COLD" = 1 ] && echo ' without the layer cache (cold)')"
t=$SECONDS
timeout "$BUILD_TIMEOUT" "${COMPOSE[@]}" build "${build_flags[@]}" broker
BUILD_SECS=$((SECONDS - t))
log "build: ${BUILD_SECS}s"
IMAGE_SIZE=$(docker image inspect relay:local --format '{{.Size}}')

log "up -d --build"
t=$SECONDS
timeout 600 "${COMPOSE[@]}" up -d --build
wait_until "every service healthy" "$HEALTHY_TIMEOUT" all_healthy "${SERVICES[@]}"
HEALTHY_SECS=$((SECONDS - t))
log "all healthy ${HEALTHY_SECS}s after up"
compose ps

# Only loopback host ports, and the limits are applied.
for svc in "${SERVICES[@]}"; do
  id=$(cids "$svc")
  mem=$(docker inspect -f '{{.HostConfig.Memory}}' "$id")
  [ "$mem" -gt 0 ] || fail "$svc has no memory limit"
  [ "$(docker inspect -f '{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config "max-size"}}' "$id")" = "json-file 10m" ] \
    || fail "$svc logs are not capped"
  [ "$(docker inspect -f '{{.Config.User}}' "$id")" = relay ] || fail "$svc does not run as relay"
done
# Every service is reachable from the host, on loopback only.
for svc in "${SERVICES[@]}"; do
  bindings=$(docker inspect -f '{{json .NetworkSettings.Ports}}' "$(cids "$svc")")
  hosts=$(jq -r '.[] | select(. != null) | .[].HostIp' <<<"$bindings")
  [ -n "$hosts" ] || fail "$svc publishes no host port"
  if grep -vx '127.0.0.1' <<<"$hosts" >/dev/null; then
    fail "$svc publishes a port beyond 127.0.0.1: $bindings"
  fi
done

# ------------------------------------------------------------ mutual TLS --
# pki ran once and exited 0, before the services; every binary says which
# identity it serves as.
pki_id=$(cids -a pki)
[ -n "$pki_id" ] || fail "no pki container"
[ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$pki_id")" = "exited 0" ] \
  || fail "pki did not exit 0: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$pki_id")"
for svc in "${SERVICES[@]}"; do
  expect_logs "$svc" "mutual TLS identity=relay://$svc "
done
log_has broker "/etc/relay/policy.conf" || fail "the broker does not say it enforces /etc/relay/policy.conf"
# No key in the image; the CA's key in the volume is root's alone.
keys=$(docker run --rm --entrypoint sh relay:local -c \
  'find / -xdev -type f \( -name "*.key" -o -name "*.pem" -o -name "*.crt" \) -exec grep -l "PRIVATE KEY" {} + 2>/dev/null' || true)
[ -z "$keys" ] || fail "the image holds key files: $keys"
if compose exec -T broker cat /pki/ca.key >/dev/null 2>&1 </dev/null; then
  fail "the broker's user can read the CA's key"
fi
log "pki: exited 0; each service serves as its own identity; no key in the image; ca.key root's only"

ctl health

# Host clients: the ports take mutual TLS only. scripts/pki-export copies
# the relayctl identity out of the volume, for programs on this machine
# (here the image's relayctl on the host's network, and the examples).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/relay-compose-e2e.XXXXXX")
scripts/pki-export "$WORK/pki" | sed 's/^/  /'
for f in ca.crt relayctl.crt relayctl.key; do [ -s "$WORK/pki/$f" ] || fail "pki-export wrote no $f"; done
[ "$(stat -c %a "$WORK/pki/relayctl.key")" = 600 ] || fail "pki-export left relayctl.key readable by others"
# A program of the image on the host's network, as this user (who owns the
# exported files, under /work): host_run PROGRAM ARGS...
host_run() {
  docker run --rm --network host --user "$(id -u):$(id -g)" -v "$WORK:/work:ro" \
    --entrypoint "$1" relay:local "${@:2}"
}
host_ctl() {
  host_run relayctl --timeout 10s \
    --tls-cert /work/pki/relayctl.crt --tls-key /work/pki/relayctl.key --tls-ca /work/pki/ca.crt "$@"
}
host_plain() { host_run relayctl --timeout 5s "$@"; }
host_ctl stock list --inventory "127.0.0.1:$RELAY_INVENTORY_PORT" | grep -E '^GPU-1 ' >/dev/null \
  || fail "no catalog from inventory-service on 127.0.0.1:$RELAY_INVENTORY_PORT"
payment_port=$(docker port "$(cids payment-service)" 7073 | sed 's/.*://')
host_ctl account list --payment "127.0.0.1:$payment_port" | grep -E '^c-alice ' >/dev/null \
  || fail "no accounts from payment-service on 127.0.0.1:$payment_port"
host_ctl broker topics --broker "127.0.0.1:$RELAY_BROKER_PORT" | grep -E '^inventory ' >/dev/null \
  || fail "no topics from the broker on 127.0.0.1:$RELAY_BROKER_PORT as relayctl"
log "host clients over mutual TLS: catalog on :$RELAY_INVENTORY_PORT, accounts on :$payment_port, topics on :$RELAY_BROKER_PORT"

# refused DESC CMD...: exits 4 (unavailable: no handshake) and says so.
refused() {
  local desc=$1 rc=0
  shift
  "$@" >"$WORK/refused.out" 2>"$WORK/refused.err" || rc=$?
  [ "$rc" -eq 4 ] || fail "$desc: exit $rc, expected 4 ($(head -c 300 "$WORK/refused.err"))"
  grep -iE 'unavailable|cannot reach' "$WORK/refused.err" >/dev/null \
    || fail "$desc: no unavailable error on stderr: $(head -c 300 "$WORK/refused.err")"
}
refused "plaintext to the broker" host_plain broker topics --broker "127.0.0.1:$RELAY_BROKER_PORT"
refused "plaintext to order-service" host_plain order list --order "127.0.0.1:$RELAY_ORDER_PORT"
refused "plaintext to inventory-service" host_plain stock list --inventory "127.0.0.1:$RELAY_INVENTORY_PORT"
log "plaintext clients refused on :$RELAY_BROKER_PORT, :$RELAY_ORDER_PORT, :$RELAY_INVENTORY_PORT (exit 4)"
# A certificate of another CA, for an identity the policy knows. The client
# trusts both CAs (so it accepts the servers and starts), the servers only
# theirs.
mkdir -p "$WORK/other"
docker run --rm --user "$(id -u):$(id -g)" -v "$WORK/other:/out" --entrypoint relay-dev-pki \
  relay:local --dir /out --name relayctl --ca-name "Another CA" >/dev/null
cat "$WORK/pki/ca.crt" "$WORK/other/ca.crt" >"$WORK/other/both-cas.crt"
other_ctl() {
  host_run relayctl --timeout 5s --tls-cert /work/other/relayctl.crt --tls-key /work/other/relayctl.key \
    --tls-ca /work/other/both-cas.crt "$@"
}
refused "another CA's certificate to the broker" other_ctl broker topics --broker "127.0.0.1:$RELAY_BROKER_PORT"
refused "another CA's certificate to order-service" other_ctl order list --order "127.0.0.1:$RELAY_ORDER_PORT"
log "a certificate from another CA refused on :$RELAY_BROKER_PORT and :$RELAY_ORDER_PORT (exit 4)"
# payment-service's identity (its container's relayctl uses its certificate)
# may publish payments and consume orders, not read the broker's topics.
rc=0
compose exec -T payment-service relayctl --timeout 5s --broker broker:7070 broker topics \
  >"$WORK/denied.out" 2>"$WORK/denied.err" </dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "payment-service's identity read the broker's topics"
# (relayctl prints PERMISSION_DENIED's message: "relay://payment-service
# may not call ListTopics (an admin RPC): ...".)
grep -E 'PERMISSION_DENIED|relay://payment-service may not call ListTopics' "$WORK/denied.err" >/dev/null \
  || fail "payment-service's identity on an admin RPC: not denied (exit $rc): $(head -c 300 "$WORK/denied.err")"
log "payment-service's identity on an admin RPC: denied (exit $rc): $(head -c 160 "$WORK/denied.err")"

# The client examples, each with the one command its README gives, with the
# exported certificate in the environment.
export RELAY_ORDER_ADDR=127.0.0.1:$RELAY_ORDER_PORT RELAY_INVENTORY_ADDR=127.0.0.1:$RELAY_INVENTORY_PORT
export RELAY_TLS_CA=$WORK/pki/ca.crt RELAY_TLS_CERT=$WORK/pki/relayctl.crt RELAY_TLS_KEY=$WORK/pki/relayctl.key
(cd examples/python && ./generate.sh >/dev/null && ./place_order.py --customer c-alice --item KB-1:1) \
  | tail -n 1 | grep -E '^order ord-[0-9a-z]+ CONFIRMED$' >/dev/null || fail "examples/python: no CONFIRMED order"
(cd examples/node && npm ci --silent >/dev/null && node place_order.js --customer c-alice --item MS-1:1) \
  | tail -n 1 | grep -E '^order ord-[0-9a-z]+ CONFIRMED$' >/dev/null || fail "examples/node: no CONFIRMED order"
unset RELAY_TLS_CA RELAY_TLS_CERT RELAY_TLS_KEY
log "examples/python and examples/node: an order CONFIRMED each, against the compose stack over mutual TLS"

# ------------------------------------------------------------ the saga --
log "happy path: c-alice KB-1"
happy=$(place c-alice KB-1:1 --wait --wait-timeout "${ORDER_TIMEOUT}s")
expect_order "$happy" CONFIRMED

log "out of stock: GPU-1 x2 (one in stock), for a customer who can pay for it"
# c-alice's 1000.00 USD is less than two GPUs (1198.00): a declined payment
# could race the stock rejection, so a funded customer of our own orders.
ctl account deposit c-e2e-rich 5000.00 --name "E2E Rich" >/dev/null
# --wait exits 5 for a CANCELLED order; the id is printed all the same.
oos=$(place c-e2e-rich GPU-1:2 --wait --wait-timeout "${ORDER_TIMEOUT}s") || true
[ -n "$oos" ] || fail "placing the out-of-stock order failed"
expect_order "$oos" CANCELLED OUT_OF_STOCK

log "declined: c-dave (5.00 USD) KB-1"
declined=$(place c-dave KB-1:1 --wait --wait-timeout "${ORDER_TIMEOUT}s") || true
[ -n "$declined" ] || fail "placing the declined order failed"
expect_order "$declined" CANCELLED PAYMENT_DECLINED

log "customer cancel: payment-service stopped, so the order stays PENDING"
compose stop payment-service
stopped_cleanly payment-service
cancelled=$(place c-alice KB-1:1)
stock_reserved() { [ "$(order_field "$1" stock_reserved)" = true ]; }
wait_until "stock reserved for $cancelled" "$ORDER_TIMEOUT" stock_reserved "$cancelled"
expect_order "$cancelled" PENDING
ctl order cancel "$cancelled" --reason "e2e: changed my mind" --json >/dev/null
expect_order "$cancelled" CANCELLED CUSTOMER
compose start payment-service
wait_until "payment-service healthy again" "$HEALTHY_TIMEOUT" all_healthy payment-service

log "each order's story in the services' logs"
expect_logs order-service \
  "order placed order=$happy" "order confirmed order=$happy" \
  "order placed order=$oos" "order cancelled order=$oos" \
  "order placed order=$declined" "order cancelled order=$declined" \
  "order placed order=$cancelled" "order cancelled order=$cancelled"
expect_logs inventory-service \
  "stock reserved order=$happy" "stock committed order=$happy" \
  "stock rejected order=$oos" \
  "stock reserved order=$declined" "stock released order=$declined" \
  "stock reserved order=$cancelled" "stock released order=$cancelled"
# Back up, payment-service handled the cancelled order's order.created and
# then its order.cancelled.
expect_logs payment-service \
  "payment captured order=$happy" \
  "payment captured order=$oos" "payment refunded order=$oos" \
  "payment declined order=$declined" \
  "payment captured order=$cancelled" "payment refunded order=$cancelled"
expect_order "$cancelled" CANCELLED CUSTOMER
log "saga outcomes and logs: ok"

# ------------------------------------------------------------ the console --
# relay-console (docs/CONSOLE.md): on 127.0.0.1 only, over mutual TLS as
# relay-console, every peer reachable; an order placed through its API
# followed to CONFIRMED with its four events.
CONSOLE="http://127.0.0.1:$RELAY_CONSOLE_PORT"
wait_until "relay-console healthy" "$HEALTHY_TIMEOUT" all_healthy relay-console
expect_logs relay-console "mutual TLS identity=relay://relay-console "
bindings=$(docker inspect -f '{{json .NetworkSettings.Ports}}' "$(cids relay-console)")
[ "$(jq -r '.[] | select(. != null) | .[].HostIp' <<<"$bindings" | sort -u)" = 127.0.0.1 ] \
  || fail "relay-console publishes a port beyond 127.0.0.1: $bindings"
console_peers_ok() {
  [ "$(curl -fsS --max-time 5 "$CONSOLE/api/overview" | jq '[.peers[] | select(.ok)] | length')" = 4 ]
}
wait_until "relay-console sees its four peers" 30 console_peers_ok
console_id=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
  -d '{"customer_id":"c-alice","items":[{"sku":"MS-1","quantity":1}]}' "$CONSOLE/api/orders" \
  | jq -er .order.order_id) || fail "relay-console did not place an order"
console_complete() {
  curl -fsS --max-time 10 "$CONSOLE/api/orders/$console_id" >"$WORK/console-order.json" \
    && [ "$(jq -r .complete "$WORK/console-order.json")" = true ]
}
wait_until "the console's order $console_id to end" "$ORDER_TIMEOUT" console_complete
expect_order "$console_id" CONFIRMED
[ "$(jq -c '[.trace.events[].type] | sort' "$WORK/console-order.json")" = \
  '["order.confirmed","order.created","payment.captured","stock.reserved"]' ] \
  || fail "the console's timeline of $console_id: $(jq -c '[.trace.events[].type]' "$WORK/console-order.json")"
log "relay-console: healthy on 127.0.0.1:$RELAY_CONSOLE_PORT as relay://relay-console; order $console_id CONFIRMED with its four events"

# ---------------------------------------------- payment-service stopped --
log "payment-service stopped: orders are accepted and stay PENDING"
compose stop payment-service
pending=()
for _ in 1 2 3; do
  pending+=("$(place c-bob MS-1:1)")
done
for id in "${pending[@]}"; do
  wait_until "stock reserved for $id" "$ORDER_TIMEOUT" stock_reserved "$id"
  expect_order "$id" PENDING
done
sleep 2
for id in "${pending[@]}"; do expect_order "$id" PENDING; done
console_says_payment_down() {
  curl -fsS --max-time 5 "$CONSOLE/api/overview" \
    | jq -e '.peers[] | select(.name == "payment-service" and (.ok | not) and (.error | contains("payment-service at payment-service:7073")))' >/dev/null
}
wait_until "relay-console to report payment-service down" 30 console_says_payment_down
log "relay-console reports payment-service unreachable and goes on serving"
compose start payment-service
for id in "${pending[@]}"; do
  wait_until "$id to end" "$ORDER_TIMEOUT" is_terminal "$id"
  expect_order "$id" CONFIRMED
done
wait_until "payment-service healthy again" "$HEALTHY_TIMEOUT" all_healthy payment-service

# ------------------------------------------------ broker restart + load --
count_orders() { ctl order list --limit 100000 --json | jq '.orders | length'; }
pending_orders() { ctl order list --status pending --limit 100000 --json | jq '.orders | length'; }
before=$(count_orders)
log "broker restart under load (5 orders/s for 20s; $before orders so far)"
load_out=$(mktemp)
timeout 180 "${COMPOSE[@]}" run --rm -T relayctl load --rate 5 --duration 20s --grace 90s \
  --customers c-alice,c-bob,c-carol,c-e2e-rich --skus MS-1,KB-1,SSD-1 --json --timeout 10s \
  >"$load_out" 2>"$load_out.err" </dev/null &
load_pid=$!
sleep 6
t=$SECONDS
timeout 120 "${COMPOSE[@]}" restart broker
log "broker restarted in $((SECONDS - t))s"
log_has broker "INFO relay-broker stopped" || fail "the broker did not log a clean stop on restart"
wait_until "broker healthy again" "$HEALTHY_TIMEOUT" all_healthy broker
load_rc=0
wait "$load_pid" || load_rc=$?
cat "$load_out"
[ -s "$load_out.err" ] && cat "$load_out.err" >&2
accepted=$(jq -r .accepted "$load_out")
ended=$(jq -r '.confirmed + ([.cancelled[]] | add // 0)' "$load_out")
[ "$load_rc" -eq 0 ] || fail "relayctl load exited $load_rc"
[ "$(jq -r .not_terminal "$load_out")" = 0 ] || fail "load: orders not terminal"
[ "$(jq -r '.errors | length' "$load_out")" = 0 ] || fail "load: errors $(jq -c .errors "$load_out")"
[ "$accepted" -gt 0 ] || fail "load: no order accepted"
[ "$ended" = "$accepted" ] || fail "load: $accepted accepted, $ended ended"
no_pending() { [ "$(pending_orders)" = 0 ]; }
wait_until "no PENDING order left" "$ORDER_TIMEOUT" no_pending
after=$(count_orders)
[ "$after" -eq $((before + accepted)) ] || fail "expected $((before + accepted)) orders, order-service has $after"
log "broker restart: $accepted orders placed under load, every one ended ($(jq -c '{confirmed,cancelled}' "$load_out"))"
rm -f "$load_out" "$load_out.err"

# ------------------------------------------------- two payment replicas --
log "scale payment-service to 2"
timeout 300 "${COMPOSE[@]}" up -d --no-recreate --scale payment-service=2
replicas() { [ "$(cids payment-service | wc -l)" -eq "$1" ]; }
wait_until "two payment-service containers" "$HEALTHY_TIMEOUT" replicas 2
wait_until "both replicas healthy" "$HEALTHY_TIMEOUT" all_healthy payment-service
# Each replica has a host port of its own, from RELAY_PAYMENT_PORTS.
ports=$(for id in $(cids payment-service); do docker port "$id" 7073 | sed 's/.*://'; done | sort -u)
[ "$(wc -l <<<"$ports")" -eq 2 ] || fail "the two payment replicas do not have two host ports: $ports"
for p in $ports; do
  host_ctl account list --payment "127.0.0.1:$p" | grep -E '^c-alice ' >/dev/null \
    || fail "no accounts from the payment replica on 127.0.0.1:$p"
done
log "payment replicas on host ports $(echo $ports)"
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1
ctl load --rate 10 --duration 4s --grace 60s --customers c-alice,c-bob,c-carol,c-e2e-rich \
  --skus MS-1,SSD-1 --json >/dev/null
handled() { docker logs --since "$since" "$1" 2>&1 | grep -cE 'payment (captured|declined)' || true; }
for id in $(cids payment-service); do
  n=$(handled "$id")
  log "payment-service container ${id:0:12}: $n payments handled"
  [ "$n" -gt 0 ] || fail "payment-service container ${id:0:12} handled no event"
done
wait_until "no PENDING order left" "$ORDER_TIMEOUT" no_pending

# ------------------------------------------------ policy reload (SIGHUP) --
# How many times the services (re)subscribed so far: neither a reload of the
# same policy nor renewed certificates may end a subscription.
subscriptions() {
  compose logs --no-color order-service inventory-service payment-service 2>/dev/null | grep -c ' subscribed topic=' || true
}
subscribed_before=$(subscriptions)
log "policy reload: SIGHUP to the broker"
compose kill -s HUP broker >/dev/null 2>&1
expect_logs broker "SIGHUP: policy reloaded"
ctl broker topics >/dev/null || fail "relayctl lost its admin rights after the reload"

# ------------------------------------------------ certificate rotation --
# New keys and certificates for every identity (same CA), while the stack
# runs: the binaries pick the files up within a second, for new
# connections; the streams open now (the services' subscriptions) stay.
# The serial of the certificate the server on the host's port $1 presents:
presented_serial() {
  host_run sh -c "openssl s_client -connect 127.0.0.1:$1 -cert /work/pki/relayctl.crt \
    -key /work/pki/relayctl.key -CAfile /work/pki/ca.crt </dev/null 2>/dev/null | openssl x509 -noout -serial"
}
# The serial of /pki/$2.crt, as service $1 sees it:
file_serial() { compose exec -T "$1" openssl x509 -noout -serial -in "/pki/$2.crt" </dev/null | tr -d '\r'; }
old_serial=$(presented_serial "$RELAY_ORDER_PORT")
[ "$old_serial" = "$(file_serial order-service order-service)" ] \
  || fail "order-service presents '$old_serial', not its certificate file's serial"
log "renewing every certificate: ${COMPOSE[*]} run --rm pki --renew"
renew_out=$(timeout 120 "${COMPOSE[@]}" run --rm -T pki --renew </dev/null 2>&1) || fail "pki --renew failed: $renew_out"
[ "$(grep -c '^dev-pki: issued ' <<<"$renew_out")" -eq 6 ] || fail "pki --renew did not issue 6 certificates: $renew_out"
new_serial=$(file_serial order-service order-service)
[ "$new_serial" != "$old_serial" ] || fail "order-service's certificate file was not renewed"
presents_new() { [ "$(presented_serial "$RELAY_ORDER_PORT")" = "$new_serial" ]; }
wait_until "order-service to present its renewed certificate" 30 presents_new
log "order-service presents the renewed certificate ($new_serial, was $old_serial)"
# (A customer and a sku of its own: the load above spent the others' money.)
ctl account deposit c-e2e-rotation 100.00 --name "E2E Rotation" >/dev/null
renewed=$(place c-e2e-rotation CB-USB:1 --wait --wait-timeout "${ORDER_TIMEOUT}s") \
  || fail "the order placed after the renewal did not end CONFIRMED ($renewed)"
expect_order "$renewed" CONFIRMED
ctl health >/dev/null || fail "relayctl health failed after the renewal"
wait_until "relay-console to see its four peers after the renewal" 30 console_peers_ok
[ "$(subscriptions)" = "$subscribed_before" ] \
  || fail "the services subscribed again after the reload or the renewal ($subscribed_before, then $(subscriptions)): a stream was dropped"
log "reload and rotation: the renewed certificates in use, no subscription dropped, orders still CONFIRMED"

# --------------------------------------------------------------- timings --
log "timings: build ${BUILD_SECS}s$([ "$COLD" = 1 ] && echo ' (cold, --no-cache)'), healthy ${HEALTHY_SECS}s after up, image relay:local ${IMAGE_SIZE} bytes ($((IMAGE_SIZE / 1024 / 1024)) MiB)"
