#!/usr/bin/env bash
# Runs one path of README.md: every ```sh block between
# `<!-- <path>:begin -->` and `<!-- <path>:end -->`, in order, as one bash
# script (set -e: any failing command fails the test), exactly as typed,
# against a fresh compose stack of its own. Then checks that each step's
# output has the shape of the output block the README shows after it
# (tests/e2e/readme_shape.py) and the outcomes the README promises. The
# stack is always taken down with its volumes at the end, also on failure.
#
#   tests/e2e/readme_test.sh                 # golden-path (project relay-readme, ports 27070/1)
#   tests/e2e/readme_test.sh cluster-path    # the cluster (relay-readme-cluster, ports 27170/1)
set -euo pipefail
cd "$(dirname "$0")/../.."

path=${1:-golden-path}
case "$path" in
  golden-path)
    export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-relay-readme}
    export RELAY_BROKER_PORT=${RELAY_BROKER_PORT:-27070}
    export RELAY_ORDER_PORT=${RELAY_ORDER_PORT:-27071}
    export RELAY_INVENTORY_PORT=${RELAY_INVENTORY_PORT:-27072}
    export RELAY_PAYMENT_PORTS=${RELAY_PAYMENT_PORTS:-27073-27076}
    export RELAY_ORDER_SYNC_PORT=${RELAY_ORDER_SYNC_PORT:-27077}
    export RELAY_CONSOLE_PORT=${RELAY_CONSOLE_PORT:-27080}
    ;;
  cluster-path)
    export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-relay-readme-cluster}
    export RELAY_BROKER_PORT=${RELAY_BROKER_PORT:-27170}
    export RELAY_ORDER_PORT=${RELAY_ORDER_PORT:-27171}
    export RELAY_INVENTORY_PORT=${RELAY_INVENTORY_PORT:-27172}
    export RELAY_PAYMENT_PORTS=${RELAY_PAYMENT_PORTS:-27173-27176}
    export RELAY_ORDER_SYNC_PORT=${RELAY_ORDER_SYNC_PORT:-27177}
    export RELAY_CONSOLE_PORT=${RELAY_CONSOLE_PORT:-27180}
    # For the clean-up below; the README's blocks export it themselves.
    cluster_files=docker-compose.yml:docker-compose.cluster.yml
    ;;
  *)
    echo "readme_test: unknown path '$path' (golden-path or cluster-path)" >&2
    exit 2
    ;;
esac

scripts/docker-engine
scripts/docker-base-image

work=$(mktemp -d)
script="$work/golden-path.sh"
output="$work/output.txt"

# As typed: no wrapper, no aliases. The step markers let readme_shape.py
# find each step's output; stdin is not a terminal, as in CI.
echo 'set -euo pipefail' > "$script"
awk -v begin="<!-- $path:begin -->" -v end="<!-- $path:end -->" '
  $0 == begin                  { inside = 1; step++; print "@@step " step; next }
  $0 == end                    { inside = 0; next }
  inside && /^```sh/           { code = 1; next }
  inside && /^```/             { code = 0; next }
  inside && code               { print }
' README.md > "$work/blocks.sh"
blocks=$(grep -vc '^@@step ' "$work/blocks.sh" || true)
[ "$blocks" -gt 0 ] || { echo "readme_test: no $path blocks found in README.md" >&2; exit 1; }
{
  # Echo each command before it runs, like a person typing it.
  while IFS= read -r line; do
    if [[ "$line" == "@@step "* ]]; then
      echo "echo '@@readme-step ${line#@@step }@@'"
    else
      printf 'echo %q\n%s\n' "\$ $line" "$line"
    fi
  done < "$work/blocks.sh"
} >> "$script"

cleanup() {
  local rc=$?
  if [ -n "${cluster_files:-}" ]; then export COMPOSE_FILE=$cluster_files; fi
  scripts/compose --profile compare down -v --remove-orphans >/dev/null 2>&1 || true
  # The run's output outlives the test, to read after a failure.
  cp "$output" "${TMPDIR:-/tmp}/readme_test-$path.txt" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

echo "readme_test: running $blocks commands from README.md's $path"
start=$SECONDS
if ! timeout 1800 bash "$script" </dev/null 2>&1 | tee "$output"; then
  echo "readme_test: FAIL: a $path command failed (output above)" >&2
  exit 1
fi

# The shape of each step's output, against the block the README shows.
python3 tests/e2e/readme_shape.py README.md "$path" "$output"

# What the README promises.
check() {
  if ! grep -qE -- "$1" "$output"; then
    echo "readme_test: FAIL: expected output matching: $1" >&2
    exit 1
  fi
}
if [ "$path" = golden-path ]; then
  check 'broker +broker:7070 +SERVING'
  check 'GPU-1 +Graphics card +299.00 USD +1 '
  check 'status +CONFIRMED'
  check 'CANCELLED \(out_of_stock: .*GPU-1'
  check 'CANCELLED \(payment_declined: .*insufficient funds'
  [ "$(grep -c '^exit 5$' "$output")" -eq 2 ] || { echo "readme_test: FAIL: expected two 'exit 5'" >&2; exit 1; }
  check 'payment-service.*payment captured order=ord-'
  check 'inventory-service.*stock reserved order=ord-'
  check 'order\.created'
  check '^broker restarts: 1$'
else
  # Both orders, the one after the kill too, went through.
  [ "$(grep -cE 'status +CONFIRMED' "$output")" -eq 2 ] ||
    { echo "readme_test: FAIL: expected two CONFIRMED orders" >&2; exit 1; }
  check 'broker lease acquired: this broker is active'
  check 'orders +payment-service'
fi
echo "readme_test: $path ran in $((SECONDS - start)) s"
echo "readme_test: 1 passed, 0 failed"
