#!/usr/bin/env bash
# What serving and scraping /metrics costs the saga: S1 (bench/README.md)
# alternated between the four processes as they run by default (no metrics
# server) and the same four with --metrics_listen, each scraped once a
# second the whole run, as a Prometheus with a 1 s interval would
# (docs/OBSERVABILITY.md#what-it-costs).
#
#   bench/saga_scraped.sh [ROUNDS] [SAGA_BENCH_FLAGS...]   # ROUNDS default 3
#
# Each round runs one S1 of each kind (`saga_bench --scenario=S1 --runs=1`,
# fresh processes); prints every run's terminal orders/s and the CPU per
# order of the four processes (the bench's own left out),
# then the median of each kind and their ratio. The metrics servers listen on
# 127.0.0.1:19101-19104 (RELAY_SCRAPE_PORT_BASE moves them). Uses
# build/release (SAGA_BENCH overrides the binary). Not a test: run it on a
# quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
shift || true
SAGA_BENCH=${SAGA_BENCH:-build/release/bench/saga_bench}
BASE=${RELAY_SCRAPE_PORT_BASE:-19101}
[ -x "$SAGA_BENCH" ] || { echo "saga_scraped: $SAGA_BENCH is not built (cmake --build --preset release --target saga_bench)" >&2; exit 2; }
command -v jq >/dev/null || { echo "saga_scraped: needs jq (scripts/setup)" >&2; exit 2; }
TMP=$(mktemp -d)
SCRAPER=""
trap '[ -z "$SCRAPER" ] || kill "$SCRAPER" 2>/dev/null; rm -rf "$TMP"' EXIT

PORTS=("$BASE" $((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
METRICS_FLAGS=(
  "--broker_flags=--metrics_listen=127.0.0.1:${PORTS[0]}"
  "--order_flags=--metrics_listen=127.0.0.1:${PORTS[1]}"
  "--inventory_flags=--metrics_listen=127.0.0.1:${PORTS[2]}"
  "--payment_flags=--metrics_listen=127.0.0.1:${PORTS[3]}"
)

# Scrapes the four ports once a second until killed, at most 10 minutes;
# counts the scrapes that answered in $TMP/scrapes.
scrape() {
  local deadline=$((SECONDS + 600)) n=0 p
  while [ "$SECONDS" -lt "$deadline" ]; do
    for p in "${PORTS[@]}"; do
      if curl -fsS --max-time 2 "http://127.0.0.1:$p/metrics" >/dev/null 2>&1; then n=$((n + 1)); fi
    done
    echo "$n" >"$TMP/scrapes"
    sleep 1
  done
}

run() {  # KIND: one S1; prints "KIND terminal/s cpu_ms_per_order"
  local kind=$1 extra=()
  [ "$kind" = plain ] || extra=("${METRICS_FLAGS[@]}")
  if [ "$kind" = scraped ]; then
    echo 0 >"$TMP/scrapes"
    scrape &
    SCRAPER=$!
  fi
  "$SAGA_BENCH" --scenario=S1 --runs=1 --json "${extra[@]}" "$@" >"$TMP/run.json" 2>"$TMP/run.err" \
    || { cat "$TMP/run.err" >&2; echo "saga_scraped: saga_bench failed" >&2; exit 1; }
  if [ -n "$SCRAPER" ]; then
    kill "$SCRAPER" 2>/dev/null || true
    wait "$SCRAPER" 2>/dev/null || true
    SCRAPER=""
  fi
  jq -r --arg kind "$kind" --arg scrapes "$(cat "$TMP/scrapes" 2>/dev/null || echo -)" \
    '.runs[0] | "\($kind) \(.terminal_per_second) \(([.cpu_seconds | to_entries[] | select(.key != "bench") | .value] | add) * 1000 / .terminal_in_window) \(if $kind == "scraped" then $scrapes else "-" end)"' \
    "$TMP/run.json"
}

printf '%-8s %12s %18s %8s\n' kind terminal/s "cpu ms/order" scrapes
for ((r = 1; r <= ROUNDS; r++)); do
  for kind in plain scraped; do
    run "$kind" "$@" | tee -a "$TMP/results" | awk '{printf "%-8s %12.0f %18.3f %8s\n", $1, $2, $3, $4}'
  done
done
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
plain=$(awk '$1 == "plain" {print $2}' "$TMP/results" | median)
scraped=$(awk '$1 == "scraped" {print $2}' "$TMP/results" | median)
plain_cpu=$(awk '$1 == "plain" {print $3}' "$TMP/results" | median)
scraped_cpu=$(awk '$1 == "scraped" {print $3}' "$TMP/results" | median)
echo
printf 'median of %d: no metrics server %.0f orders/s (%.3f ms CPU/order), scraped every second %.0f orders/s (%.3f ms CPU/order): ratio %.3f\n' \
  "$ROUNDS" "$plain" "$plain_cpu" "$scraped" "$scraped_cpu" "$(awk -v a="$scraped" -v b="$plain" 'BEGIN {print a / b}')"
