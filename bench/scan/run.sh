#!/usr/bin/env bash
# Benchmark `stint scan` against gitleaks on a generated tree.
#   bench/scan/run.sh [SIZE_MB] [GITLEAKS_SIZE_MB]
# Run from the repository root.
set -euo pipefail
SIZE_MB=${1:-200}
GL_MB=${2:-20}
WORK=${WORK:-/tmp/stint-scan-bench}
mkdir -p "$WORK"
# Prefer the real binary; if cmd/stint does not build (other commands
# mid-edit), build scan.go alone: an overlay swaps every other file of the
# package for an empty one and adds a throwaway main.
if ! go build -o "$WORK/stint" ./cmd/stint 2>/dev/null; then
	cat > "$WORK/main_tmp.go" <<'GO'
package main

import "os"

func main() {
	if err := newScanCmd().Execute(); err != nil {
		os.Exit(1)
	}
}
GO
	echo "package main" > "$WORK/empty.go"
	{
		printf '{"Replace":{'
		for f in cmd/stint/*.go; do
			[ "$f" = cmd/stint/scan.go ] && continue
			printf '"%s":"%s",' "$PWD/$f" "$WORK/empty.go"
		done
		printf '"%s":"%s"}}' "$PWD/cmd/stint/zz_bench_main.go" "$WORK/main_tmp.go"
	} > "$WORK/overlay.json"
	go build -overlay "$WORK/overlay.json" -o "$WORK/stint" ./cmd/stint
fi
go build -o "$WORK/score" ./bench/scan/score
GITLEAKS=${GITLEAKS:-$(command -v gitleaks || echo "$(go env GOPATH)/bin/gitleaks")}

measure() { # name tree cmd… ; prints seconds and max RSS
	local name=$1; shift
	/usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" >/dev/null 2>"$WORK/$name.stderr" || true
	read -r secs rss < <(tail -1 "$WORK/$name.time")
	echo "$secs $rss"
}

for size in "$GL_MB" "$SIZE_MB"; do
	tree="$WORK/tree-$size"
	if [ ! -d "$tree" ]; then
		go run ./bench/scan/gen -out "$tree" -mb "$size"
		mv "$WORK/truth.json" "$WORK/truth-$size.json"
	fi
	bytes=$(du -sb "$tree" | cut -f1)
	mb=$(awk "BEGIN{print $bytes/1048576}")
	sync
	read -r s rss < <(measure "stint-$size" "$WORK/stint" scan --format json -o "$WORK/stint-$size.json" "$tree")
	echo "stint    ${mb} MB  ${s}s  $(awk "BEGIN{printf \"%.1f\", $mb/$s}") MB/s  maxRSS=$((rss/1024))MB  $("$WORK/score" -truth "$WORK/truth-$size.json" -report "$WORK/stint-$size.json" -root "$tree")"
	if [ "$size" = "$GL_MB" ]; then
		if [ -x "$GITLEAKS" ]; then
			read -r s rss < <(measure "gitleaks-$size" "$GITLEAKS" dir "$tree" --no-banner --exit-code 0 --report-format json --report-path "$WORK/gitleaks-$size.json")
			echo "gitleaks ${mb} MB  ${s}s  $(awk "BEGIN{printf \"%.2f\", $mb/$s}") MB/s  maxRSS=$((rss/1024))MB  $("$WORK/score" -format gitleaks -truth "$WORK/truth-$size.json" -report "$WORK/gitleaks-$size.json" -root "$tree")"
		else
			echo "gitleaks not installed (go install github.com/zricethezav/gitleaks/v8@v8.30.1)"
		fi
	fi
done
