package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/bench"
)

const proxyBenchConfig = `
server:
  store: sqlite://{{dir}}/stint.db
  issuer_url: {{url}}
identity_providers:
  - name: dev-cluster
    type: kubernetes
    issuer: https://dev-cluster.stint.local
    jwks_file: {{dir}}/dev-cluster-jwks.json
targets:
  - name: llm
    type: http
    url: {{upstream}}
    roles:
      chat: { methods: [POST], paths: [/v1/chat/completions] }
policies:
  - name: support-bot-llm
    grants: [llm/chat]
    when: identity.service_account == "support-bot" && request.body.model in ["gpt-4.1-mini"]
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

// TestProxyOverhead measures, in one run, the latency the proxy adds over
// a direct call to the same local upstream (p50, p99 at one client) and
// the throughput ratio proxy/direct (8 clients). The proxied path is the
// real one: JWT verification, CEL policy on the JSON body, key injection,
// and an fsync'd audit file. It is a benchmark so that plain test runs
// skip nothing: go test -run XXX -bench BenchmarkProxyOverhead -benchtime 1x
// ./internal/app (see bench/proxy.md). It measures once, whatever b.N is.
func BenchmarkProxyOverhead(b *testing.B) {
	t := b
	dur := 3 * time.Second
	if d, err := time.ParseDuration(os.Getenv("STINT_BENCH_DURATION")); err == nil {
		dur = d
	}
	resp := []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"ok"}}]}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	}))
	defer up.Close()
	e := newProxyEnvWith(t, proxyBenchConfig, up.URL)
	agent := e.workload("agents", "support-bot")
	body := []byte(`{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hello"}]}`)
	direct := bench.Post(up.URL+"/v1/chat/completions", "application/json", "direct", body)
	proxied := bench.Post(e.url+"/proxy/llm/v1/chat/completions", "application/json", agent, body)
	ctx := context.Background()

	lat := func(name string, req bench.Request) bench.Result {
		return bench.Run(ctx, name, bench.Options{Concurrency: 1, Duration: dur, Warmup: 300 * time.Millisecond}, req)
	}
	thr := func(name string, req bench.Request) bench.Result {
		return bench.Run(ctx, name, bench.Options{Concurrency: 8, Duration: dur, Warmup: 300 * time.Millisecond}, req)
	}
	dl, pl := lat("direct c=1", direct), lat("proxy c=1", proxied)
	dt, pt := thr("direct c=8", direct), thr("proxy c=8", proxied)
	for _, r := range []bench.Result{dl, pl, dt, pt} {
		t.Log(r.String())
		if r.Errors > 0 || r.Requests == 0 {
			t.Fatalf("%s: %d errors (%s)", r.Name, r.Errors, r.FirstError)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	summary := fmt.Sprintf("RESULT p50_overhead_ms=%.3f p99_overhead_ms=%.3f direct_rps=%.0f proxy_rps=%.0f ratio=%.3f",
		ms(pl.P50-dl.P50), ms(pl.P99-dl.P99), dt.PerSecond, pt.PerSecond, pt.PerSecond/dt.PerSecond)
	t.Log(summary)
	fmt.Println(summary)
	if !strings.Contains(summary, "ratio") {
		t.Fatal("unreachable")
	}
}
