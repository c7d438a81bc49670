package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/bench"
	"github.com/stint-dev/stint/internal/proxy"
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

// chatCompletion is what the local upstream answers: a small, realistic
// chat-completion response (the same bytes on both paths).
const chatCompletion = `{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion",` +
	`"created":1741569952,"model":"gpt-4.1-mini-2025-04-14","choices":[{"index":0,"message":{"role":"assistant",` +
	`"content":"Your order #48213 shipped yesterday and should arrive within two business days.","refusal":null,` +
	`"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":17,` +
	`"total_tokens":36},"service_tier":"default","system_fingerprint":"fp_6ec83003ad"}`

// BenchmarkProxyOverhead measures, in one run, the latency the proxy adds
// over a direct call to the same local upstream (p50, p99 at one client)
// and the throughput ratio proxy/direct (8 clients). The proxied path is
// the real one: JWT verification, CEL policy on the JSON body, key
// injection, and an fsync'd audit file. It measures once, whatever b.N is
// (go test -run XXX -bench BenchmarkProxyOverhead -benchtime 1x
// ./internal/app; see bench/proxy.md).
//
// The throughput runs are interleaved (direct, proxy, bare, three rounds)
// so that load from other processes on a shared machine falls on all
// paths alike. "bare" is a plain httputil.ReverseProxy with the same
// transport in front of the same upstream: the cost of the extra HTTP hop
// alone, for reference. cpu_us is this process's CPU time (client, stint
// and upstream together) per request during those runs.
func BenchmarkProxyOverhead(b *testing.B) {
	t := b
	dur := 3 * time.Second
	if d, err := time.ParseDuration(os.Getenv("STINT_BENCH_DURATION")); err == nil {
		dur = d
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, chatCompletion)
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	bareRP := httputil.NewSingleHostReverseProxy(upURL)
	bareRP.Transport = proxy.NewTransport()
	bare := httptest.NewServer(bareRP)
	defer bare.Close()
	e := newProxyEnvWith(t, proxyBenchConfig, up.URL)
	agent := e.workload("agents", "support-bot")
	body := []byte(`{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"Where is my order #48213?"}]}`)
	direct := bench.Post(up.URL+"/v1/chat/completions", "application/json", "direct", body)
	proxied := bench.Post(e.url+"/proxy/llm/v1/chat/completions", "application/json", agent, body)
	bared := bench.Post(bare.URL+"/v1/chat/completions", "application/json", "direct", body)
	ctx := context.Background()

	lat := func(name string, req bench.Request) bench.Result {
		return bench.Run(ctx, name, bench.Options{Concurrency: 1, Duration: dur, Warmup: 300 * time.Millisecond}, req)
	}
	dl, pl := lat("direct c=1", direct), lat("proxy c=1", proxied)
	const rounds = 3
	paths := []struct {
		name string
		req  bench.Request
	}{{"direct c=8", direct}, {"proxy c=8", proxied}, {"bare c=8", bared}}
	thr := make([]bench.Result, len(paths))
	cpu := make([]time.Duration, len(paths))
	for range rounds {
		for i, p := range paths {
			c0 := processCPU(t)
			r := bench.Run(ctx, p.name, bench.Options{Concurrency: 8, Duration: dur / rounds, Warmup: 100 * time.Millisecond}, p.req)
			cpu[i] += processCPU(t) - c0
			thr[i] = merge(thr[i], r)
		}
	}
	dt, pt, bt := thr[0], thr[1], thr[2]
	for _, r := range []bench.Result{dl, pl, dt, pt, bt} {
		if r.Concurrency == 1 {
			t.Log(r.String())
		} else {
			t.Logf("%s: %d requests in %.1fs (%d rounds) with %d workers: %.0f/s, errors %d",
				r.Name, r.Requests, r.Duration.Seconds(), rounds, r.Concurrency, r.PerSecond, r.Errors)
		}
		if r.Errors > 0 || r.Requests == 0 {
			t.Fatalf("%s: %d errors (%s)", r.Name, r.Errors, r.FirstError)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	us := func(i int) float64 { return float64(cpu[i]) / float64(time.Microsecond) / float64(thr[i].Requests) }
	summary := fmt.Sprintf("RESULT p50_overhead_ms=%.3f p99_overhead_ms=%.3f direct_rps=%.0f proxy_rps=%.0f ratio=%.3f"+
		" bare_rps=%.0f bare_ratio=%.3f cpu_us direct=%.1f proxy=%.1f bare=%.1f",
		ms(pl.P50-dl.P50), ms(pl.P99-dl.P99), dt.PerSecond, pt.PerSecond, pt.PerSecond/dt.PerSecond,
		bt.PerSecond, bt.PerSecond/dt.PerSecond, us(0), us(1), us(2))
	t.Log(summary)
	fmt.Println(summary)
}

// merge adds one interleaved slice r to the running total a (throughput
// only: the percentiles are not merged).
func merge(a, r bench.Result) bench.Result {
	if a.Name == "" {
		a = bench.Result{Name: r.Name, Concurrency: r.Concurrency, FirstError: r.FirstError}
	}
	a.Requests += r.Requests
	a.Errors += r.Errors
	a.Duration += r.Duration
	a.PerSecond = float64(a.Requests) / a.Duration.Seconds()
	if a.FirstError == "" {
		a.FirstError = r.FirstError
	}
	return a
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
