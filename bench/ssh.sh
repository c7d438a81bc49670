#!/usr/bin/env bash
# SSH certificate benchmark (issue: ssh/x509). Starts `stint dev` (SQLite,
# leases recorded, durable audit file required) and drives POST
# /v1/credentials on its demo-ssh target with a fixed public key, then
# measures raw Ed25519 signatures/s on one core in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stint" ./cmd/stint
"$work/stint" dev --dir "$work/dev" --listen 127.0.0.1:18450 >"$work/dev.log" 2>&1 &
pid=$!
until curl -sf -o /dev/null http://127.0.0.1:18450/readyz; do sleep 0.01; done
export STINT_DEV_DIR="$work/dev"
"$work/stint" dev token --ttl 2h >"$work/sa.jwt"
ssh-keygen -q -t ed25519 -N "" -f "$work/key"
for c in ${CONCS:-16 32}; do
  for i in $(seq 1 "$RUNS"); do
    "$work/stint" bench creds --addr http://127.0.0.1:18450 --identity-token-file "$work/sa.jwt" \
      --target demo-ssh --role ops --public-key-file "$work/key.pub" -c "$c" -d "$DUR" --server-pid "$pid" --baseline=false
    "$work/stint" bench baseline --alg ed25519 --duration 3s
  done
done
