#!/usr/bin/env bash
# Token-exchange benchmark (issue: core). Builds stint, starts `stint dev`
# (SQLite store, durable fsync'd file audit sink, required), and runs
# `stint bench exchange` RUNS times against it over loopback, each followed
# by the raw-crypto baseline in the same run. Also measures start-up to
# ready and the server's RSS. Prints every run; take the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DUR=${DUR:-10s}
CONC=${CONC:-32}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stint" ./cmd/stint

# Start-up to ready: process launch until /readyz answers 200, on a fresh store.
for i in 1 2 3 4 5; do
  d="$work/startup$i"
  t0=$(date +%s%N)
  "$work/stint" dev --dir "$d" --listen 127.0.0.1:18431 >"$d.log" 2>&1 &
  p=$!
  until curl -sf -o /dev/null http://127.0.0.1:18431/readyz; do sleep 0.002; done
  t1=$(date +%s%N)
  echo "startup to ready (fresh store, keys generated): $(( (t1 - t0) / 1000000 )) ms"
  kill $p; wait $p 2>/dev/null || true
done

"$work/stint" dev --dir "$work/dev" --listen 127.0.0.1:18430 ${NOAUDIT:+--no-audit-sink} >"$work/dev.log" 2>&1 &
pid=$!
until curl -sf -o /dev/null http://127.0.0.1:18430/readyz; do sleep 0.01; done
export STINT_DEV_DIR="$work/dev"
"$work/stint" dev token --namespace agents --service-account support-bot --ttl 2h >"$work/sa.jwt"
for i in $(seq 1 "$RUNS"); do
  "$work/stint" bench exchange --addr http://127.0.0.1:18430 --identity-token-file "$work/sa.jwt" \
    -c "$CONC" -d "$DUR" --server-pid "$pid" ${AUDIENCE:+--audience "$AUDIENCE"}
done
[ -n "${NOAUDIT:-}" ] || "$work/stint" audit verify "$work/dev/audit.jsonl"
