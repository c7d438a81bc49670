#!/usr/bin/env bash
# aws-iam -> aws-sts benchmark against a local STS that speaks the
# Query/XML wire format (internal/issuer/awssts/ststest/localsts). AWS
# itself cannot be reached from here. Reports stint's p50 at one client and
# the STS-only baselines (the same two round trips made with the SDK,
# from another process to the same STS, and within one process).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'kill $sts $srv 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stint" ./cmd/stint
go build -o "$work/localsts" ./internal/issuer/awssts/ststest/localsts
"$work/localsts" -addr 127.0.0.1:18491 -proof "$work/proof" >"$work/sts.log" 2>&1 &
sts=$!
for _ in $(seq 1 100); do [ -s "$work/proof" ] && break; sleep 0.05; done
cat >"$work/stint.yaml" <<YAML
server:
  listen: 127.0.0.1:18492
  store: sqlite://$work/stint.db
identity_providers:
  - name: aws
    type: aws-iam
    sts_endpoints: [http://127.0.0.1:18491/]
    server_id: stint-bench
targets:
  - name: aws
    type: aws-sts
    sts_endpoint: http://127.0.0.1:18491/
    region: us-east-1
    roles:
      reader:
        kind: assume_role
        role_arn: arn:aws:iam::111122223333:role/orders-reader
        default_ttl: 15m
policies:
  - name: ci-reads
    grants: [aws/reader]
    when: identity.role_name == "ci-runner"
audit:
  sinks:
    - { type: file, path: $work/audit.jsonl }
YAML
AWS_ACCESS_KEY_ID=AKIABENCHSTINT000001 AWS_SECRET_ACCESS_KEY=stint-secret AWS_REGION=us-east-1 \
AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true \
  "$work/stint" server --config "$work/stint.yaml" >"$work/server.log" 2>&1 &
srv=$!
until curl -sf -o /dev/null http://127.0.0.1:18492/readyz; do sleep 0.02; done
for i in $(seq 1 "$RUNS"); do
  "$work/stint" --addr http://127.0.0.1:18492 bench creds --target aws --role reader \
    --identity-token-file "$work/proof" -c 1 -d 5s --warmup 1s --baseline=false
  # Baseline: the same two round trips with the SDK, from a separate
  # process to the STS process stint calls (cross-process, as stint's
  # are), then as before with client and STS in one process.
  echo "STS only, separate process:"
  "$work/localsts" -against http://127.0.0.1:18491/ -baseline 5s
  echo "STS only, one process:"
  "$work/localsts" -addr 127.0.0.1:18493 -baseline 5s
done
