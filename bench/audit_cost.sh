#!/usr/bin/env bash
# Cost of the durable audit sink on the token-exchange benchmark (issue:
# audit). Alternates runs of `stint dev` with its required, fsync'd file
# sink and with --no-audit-sink (events chained and hashed, then written
# best-effort to /dev/null), each on a fresh server, and prints the ratio
# of each pair, so that the machine's drift between runs cancels out.
#   PAIRS=3 DUR=8s CONCS="16 48 96" bench/audit_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-3}
DUR=${DUR:-8s}
work=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stint" ./cmd/stint

# one MODE CONC: prints exchanges/s of one run on a fresh server.
one() {
  local dir="$work/run$RANDOM"
  "$work/stint" dev --dir "$dir" --listen 127.0.0.1:18435 $1 >"$dir.log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null http://127.0.0.1:18435/readyz; do sleep 0.01; done
  STINT_DEV_DIR="$dir" "$work/stint" dev token --namespace agents --service-account support-bot --ttl 2h >"$dir.jwt"
  "$work/stint" bench exchange --addr http://127.0.0.1:18435 --identity-token-file "$dir.jwt" \
    -c "$2" -d "$DUR" --server-pid "$pid" --baseline=false | grep '^exchange:' >"$dir.out"
  kill $pid; wait $pid 2>/dev/null || true
  sed -n 's/.*workers: \([0-9]*\)\/s.*/\1/p' "$dir.out"
  cat "$dir.out" >&2
}

for c in ${CONCS:-16 48 96}; do
  for i in $(seq 1 "$PAIRS"); do
    d=$(one "" "$c")
    n=$(one --no-audit-sink "$c")
    echo "clients $c pair $i: durable $d/s, no sink $n/s, ratio $(awk "BEGIN{printf \"%.2f\", $d/$n}")"
  done
done
