#!/usr/bin/env bash
# The compose `observability` profile end to end (docs/OBSERVABILITY.md):
# brings the stack up with Prometheus, places one order with relayctl, and
# checks through Prometheus' HTTP API that
#   - every Relay process is a target and up (payment-service scaled to 2:
#     each replica is its own target),
#   - the counters moved by the order: one placed, one ended, its events
#     appended, acked by every group,
#   - the recording rules have series and the alert rules are loaded.
# Then stops everything (down -v). Not in CI (a second stack and image;
# about 5 minutes with a warm build cache): run it by hand.
#
#   tests/e2e/observability_test.sh
#
# Needs root where Docker is not installed yet (scripts/docker-engine).
set -euo pipefail

cd "$(dirname "$0")/../.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-relay-obs}
export RELAY_BROKER_PORT=${RELAY_BROKER_PORT:-37070}
export RELAY_ORDER_PORT=${RELAY_ORDER_PORT:-37071}
export RELAY_INVENTORY_PORT=${RELAY_INVENTORY_PORT:-37072}
export RELAY_PAYMENT_PORTS=${RELAY_PAYMENT_PORTS:-37073-37076}
export RELAY_ORDER_SYNC_PORT=${RELAY_ORDER_SYNC_PORT:-37077}
export RELAY_PROMETHEUS_PORT=${RELAY_PROMETHEUS_PORT:-39090}
PROM="http://127.0.0.1:${RELAY_PROMETHEUS_PORT}"
SERVICES=(broker order-service inventory-service payment-service)

T0=$SECONDS
log() { printf '[observability_test %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() {
  printf '[observability_test %4ds] FAIL: %s\n' "$((SECONDS - T0))" "$*" >&2
  exit 1
}

scripts/docker-engine
scripts/docker-base-image
command -v jq >/dev/null 2>&1 || fail "needs jq (scripts/setup installs it)"
command -v curl >/dev/null 2>&1 || fail "needs curl"

COMPOSE=(scripts/compose --profile observability --profile tools)
compose() { "${COMPOSE[@]}" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  if [ "$rc" -ne 0 ]; then
    timeout 60 "${COMPOSE[@]}" ps -a >&2
    timeout 60 "${COMPOSE[@]}" logs --no-color --tail=30 prometheus >&2
  fi
  log "cleanup: down -v"
  timeout 180 "${COMPOSE[@]}" down -v --remove-orphans --timeout 20 >/dev/null 2>&1
  if [ "$rc" -eq 0 ]; then log "PASS"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_until() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for $desc"
    sleep 2
  done
}

# One instant query; prints the result vector as JSON.
query() { curl -fsS --max-time 10 "$PROM/api/v1/query" --data-urlencode "query=$1" | jq -c '.data.result'; }
# The single value of an instant query (empty when no series).
value() { curl -fsS --max-time 10 "$PROM/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty'; }

log "clean slate"
timeout 180 "${COMPOSE[@]}" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
log "build"
timeout 3600 "${COMPOSE[@]}" build broker prometheus
log "up (payment-service x2)"
timeout 600 "${COMPOSE[@]}" up -d --scale payment-service=2 broker order-service inventory-service payment-service prometheus

targets_up() {
  local json
  json=$(curl -fsS --max-time 10 "$PROM/api/v1/targets" 2>/dev/null) || return 1
  # 5 targets: broker, order, inventory and two payment-service replicas.
  [ "$(jq '[.data.activeTargets[] | select(.health == "up")] | length' <<<"$json")" -eq 5 ]
}
wait_until "Prometheus scraping 5 targets, all up" 180 targets_up
log "targets: $(curl -fsS "$PROM/api/v1/targets" | jq -c '[.data.activeTargets[] | {job: .labels.job, health}]')"

log "place an order"
order=$(timeout 120 "${COMPOSE[@]}" run --rm -T relayctl --timeout 30s order place \
  --customer c-alice --item KB-1:1 --json </dev/null | jq -er '.order.order_id') \
  || fail "relayctl order place failed"
log "order $order placed"

ended() { [ "$(value 'sum(relay_order_ended_total)')" = 1 ]; }
wait_until "relay_order_ended_total = 1" 60 ended
[ "$(value 'relay_order_placed_total')" = 1 ] || fail "relay_order_placed_total is not 1"
# order.created and one order.confirmed/cancelled on orders.
[ "$(value 'relay_broker_events_appended_total{topic="orders"}')" = 2 ] \
  || fail "orders appended: $(query 'relay_broker_events_appended_total')"
lag_zero() { [ "$(value 'sum(relay_broker_group_lag)')" = 0 ]; }
wait_until "every group acked everything" 60 lag_zero
[ "$(value 'relay_order_pending_orders')" = 0 ] || fail "an order is still pending"

recorded() { [ -n "$(value 'sum(relay:events_appended:rate1m)')" ]; }
wait_until "the recording rule relay:events_appended:rate1m" 60 recorded
rules=$(curl -fsS "$PROM/api/v1/rules" | jq -r '[.data.groups[].rules[] | select(.health == "ok") | .name] | join(",")')
for r in relay:events_appended:rate1m relay:group_lag:max relay:saga_seconds:p99 \
  RelayGroupLagGrowing RelayOrdersTimedOut RelayDeadLetters; do
  [[ ",$rules," == *",$r,"* ]] || fail "rule $r not loaded and healthy: $rules"
done
log "rules loaded: $rules"
