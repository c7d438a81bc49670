#!/usr/bin/env bash
# Lease benchmarks (issue: leases and database users), against the real
# PostgreSQL at STINT_TEST_POSTGRES_URL:
#  1. credentials/s for a postgres target over HTTP, each lease revoked
#     right away (create + drop), with 4 admin connections, next to the raw
#     rate of the same creation + revocation SQL over 4 plain pgx
#     connections measured in the same run (go test benchmark);
#  2. the kill switch: N active leases revoked by one call, timed until
#     the last role is gone from pg_roles, while a second client keeps
#     asking for jwt credentials; its p99 is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${STINT_TEST_POSTGRES_URL:?set STINT_TEST_POSTGRES_URL}"
RUNS=${RUNS:-3}
SKIP_CYCLES=${SKIP_CYCLES:-}
DUR=${DUR:-10s}
N=${N:-10000}
# HTTP clients of the cycle benchmark. The raw benchmark runs
# 4×GOMAXPROCS goroutines (8 on 2 cores) over its 4 connections, so that
# its connections never wait on the client; CLIENTS=8 gives stint's 4 admin
# connections the same.
CLIENTS=${CLIENTS:-4}
work=$(mktemp -d)
port=18460
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stint" ./cmd/stint
psql "$STINT_TEST_POSTGRES_URL" -qc "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='stint_bench_readers') THEN CREATE ROLE stint_bench_readers NOLOGIN; END IF; END \$\$;"
"$work/stint" dev --dir "$work/dev" --listen 127.0.0.1:$port >/dev/null 2>&1 &
dp=$!
until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.01; done
kill $dp; wait $dp 2>/dev/null || true
# The dev config plus a postgres target and a long max_ttl for the kill-switch leases.
python3 - "$work/dev/stint.yaml" "$STINT_TEST_POSTGRES_URL" <<'PY'
import sys
p, dsn = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("policies:\n", """  - name: bench-db
    type: postgres
    dsn: %s
    name_prefix: stintbench
    max_conns: 4
    roles:
      readonly:
        creation: |
          CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}';
          GRANT stint_bench_readers TO "{{.Name}}";
        default_ttl: 1h
policies:
  - name: agents-bench-db
    grants: [bench-db/readonly]
    max_ttl: 2h
    when: identity.namespace == "agents"
""" % dsn, 1)
open(p, "w").write(s)
PY
"$work/stint" server --config "$work/dev/stint.yaml" >"$work/server.log" 2>&1 &
pid=$!
until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.01; done
export STINT_DEV_DIR="$work/dev" STINT_ADDR=http://127.0.0.1:$port
"$work/stint" dev token --ttl 3h >"$work/sa.jwt"
"$work/stint" dev token --namespace agents --service-account other --ttl 3h >"$work/other.jwt"
"$work/stint" dev token --human root --groups stint-admins --ttl 3h >"$work/admin.jwt"

# Every cycle leaves dead rows in PostgreSQL's shared role catalogs; with
# autovacuum off (as on this machine) they pile up and slow each later
# CREATE ROLE. Both sides start each run from vacuumed catalogs.
vacuum() { psql "$STINT_TEST_POSTGRES_URL" -qc "VACUUM pg_authid, pg_auth_members, pg_shdescription, pg_shdepend"; }
echo "== create+drop cycles, 4 connections, $CLIENTS clients"
for i in $(seq 1 "$([ -n "$SKIP_CYCLES" ] && echo 0 || echo "$RUNS")"); do
  vacuum
  "$work/stint" bench creds --identity-token-file "$work/sa.jwt" --target bench-db --role readonly --revoke -c "$CLIENTS" -d "$DUR" --warmup 1s --baseline=false
  vacuum
  go test -run XXX -bench 'BenchmarkRawCreateDropPostgres' -benchtime "$DUR" ./internal/issuer/postgres/ | grep -E '^Benchmark'
done

echo "== kill switch: $N leases"
# Roles of earlier leases (e.g. one whose revoke the cycle benchmark cut off
# when its time ran out) stay until their lease expires; count from here.
base=$(psql "$STINT_TEST_POSTGRES_URL" -tAc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'stintbench\_%'")
"$work/stint" bench creds --identity-token-file "$work/other.jwt" --target bench-db --role readonly -c 16 -d 600s --warmup 0s --baseline=false --max-requests "$N" >/dev/null
before=$(psql "$STINT_TEST_POSTGRES_URL" -tAc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'stintbench\_%'")
echo "roles before: $before"
"$work/stint" bench creds --identity-token-file "$work/sa.jwt" --target demo-api --role read -c 4 -d 60s --warmup 0s --baseline=false >"$work/jwt-during.txt" &
bp=$!
sleep 2
t0=$(date +%s%N)
"$work/stint" revoke --identity-token-file "$work/admin.jwt" --subject system:serviceaccount:agents:other
while :; do
  left=$(psql "$STINT_TEST_POSTGRES_URL" -tAc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'stintbench\_%'")
  [ "$left" -le "$base" ] && break
  sleep 0.2
done
t1=$(date +%s%N)
echo "kill switch: $((before - base)) roles gone in $(( (t1 - t0) / 1000000 )) ms"
kill -INT $bp 2>/dev/null || true; wait $bp 2>/dev/null || true
echo "jwt credentials during the kill switch:"; cat "$work/jwt-during.txt"
