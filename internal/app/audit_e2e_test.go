package app_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/audit"
)

// auditReceiver is an NDJSON collector that keeps events in arrival order.
type auditReceiver struct {
	mu     sync.Mutex
	events []audit.Event
}

func (rc *auditReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var got []audit.Event
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, e)
	}
	rc.mu.Lock()
	rc.events = append(rc.events, got...)
	rc.mu.Unlock()
}

func (rc *auditReceiver) got() []audit.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]audit.Event(nil), rc.events...)
}

// auditSinksConfig is testConfig with its audit sinks replaced.
func auditSinksConfig(sinks string) string {
	i := strings.Index(testConfig, "audit:\n")
	return testConfig[:i] + "audit:\n  sinks:\n" + sinks
}

// readAuditFile returns the events of the local record in order.
func readAuditFile(t *testing.T, path string) []audit.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestAuditHTTPReceiverDownBlocksNoRequest runs token exchanges against a
// server whose best-effort http sink points at a receiver that is down, and
// against a server without that sink, interleaved so that both see the same
// machine load. Every exchange completes promptly and the sink costs little;
// once the receiver is up every event of the local record arrives exactly
// once, in order.
func TestAuditHTTPReceiverDownBlocksNoRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // reserved and closed: the receiver is down
	withSink := newEnvConfig(t, auditSinksConfig(`    - { type: file, path: {{dir}}/audit.jsonl }
    - { type: http, url: "http://`+addr+`/ingest", format: ndjson, spool_dir: {{dir}}/spool }
`))
	if s := withSink.app.Config.Audit.Sinks[1]; *s.Required || s.OnFull != "drop_oldest" {
		t.Fatalf("http sink defaults: required %v on_full %q", *s.Required, s.OnFull)
	}
	without := newEnvConfig(t, testConfig)

	const n = 150
	var lat, base []time.Duration
	exchange := func(e *env, into *[]time.Duration) {
		tok := e.workload("agents", "support-bot")
		start := time.Now()
		code, res := e.exchange(url.Values{"subject_token": {tok}, "audience": {"https://api.demo.local"}})
		d := time.Since(start)
		if code != 200 {
			t.Fatalf("exchange: %d %v", code, res)
		}
		if d > time.Second {
			t.Fatalf("an exchange took %v while the audit receiver was down", d)
		}
		*into = append(*into, d)
	}
	for range n {
		exchange(withSink, &lat)
		exchange(without, &base)
	}
	ratio := float64(median(base)) / float64(median(lat))
	t.Logf("median exchange latency: %v with the sink (receiver down), %v without; throughput ratio %.2f", median(lat), median(base), ratio)
	// 2 shared cores: allow noise, but a sink that waited on the receiver
	// (retry backoff starts at 1 s) would be far below this.
	if ratio < 0.5 {
		t.Fatalf("exchanges with the down receiver ran at %.2f of the speed without the sink", ratio)
	}

	if !strings.Contains(withSink.logBuf.String(), "http sink delivery failed") {
		t.Fatal("the receiver outage was not logged through the server's logger")
	}
	rc := &auditReceiver{}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	defer srv.Close()

	record := readAuditFile(t, filepath.Join(withSink.dir, "audit.jsonl"))
	if len(record) < 2*n {
		t.Fatalf("local record has %d events for %d exchanges", len(record), n)
	}
	// The sender retries with backoff (up to 8 s by now); wait for it.
	deadline := time.Now().Add(45 * time.Second)
	for len(rc.got()) < len(record) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := rc.got()
	if len(got) < len(record) {
		t.Fatalf("receiver got %d of %d events", len(got), len(record))
	}
	seen := map[string]bool{}
	for i, e := range got {
		if e.Type == audit.Gap {
			t.Fatalf("receiver got a gap event: %+v", e)
		}
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
		if i < len(record) && (e.ID != record[i].ID || e.Seq != record[i].Seq || e.Hash != record[i].Hash) {
			t.Fatalf("receiver event %d is seq %d id %s; the record has seq %d id %s there", i, e.Seq, e.ID, record[i].Seq, record[i].ID)
		}
	}
}

// TestAuditRequiredSinkFailureFailsIssuance adds a required file sink on
// /dev/full: every write to it fails with ENOSPC from the kernel, as on a
// full disk. (A directory made unwritable after start would not do: the
// sink keeps its file open, and the tests run as root.) Issuance through
// the HTTP API then fails with 503 and a clear description, no credential
// is returned, and the lease is left revoked.
func TestAuditRequiredSinkFailureFailsIssuance(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	e := newEnvConfig(t, auditSinksConfig(`    - { type: file, path: {{dir}}/audit.jsonl }
    - { type: file, path: /dev/full, required: true }
`))
	agent := e.workload("agents", "support-bot")
	code, res := e.post("/v1/credentials", agent, map[string]any{"target": "demo-api", "role": "read", "ttl": "5m"})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("credentials: status %d, want 503: %v", code, res)
	}
	if d, _ := res["error_description"].(string); !strings.Contains(d, "audit") {
		t.Fatalf("error_description %q does not say the audit record is unavailable", d)
	}
	if res["credential"] != nil || res["lease_id"] != nil {
		t.Fatalf("a failed issuance returned a credential: %v", res)
	}
	code, res = e.exchange(url.Values{"subject_token": {agent}, "audience": {"https://api.demo.local"}})
	if code != http.StatusServiceUnavailable || res["access_token"] != nil {
		t.Fatalf("token exchange: status %d, want 503 without a token: %v", code, res)
	}
	if d, _ := res["error_description"].(string); !strings.Contains(d, "audit") {
		t.Fatalf("error_description %q does not say the audit record is unavailable", d)
	}

	req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/leases", nil)
	req.Header.Set("Authorization", "Bearer "+agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, list := decode(t, resp)
	leases, _ := list["leases"].([]any)
	for _, l := range leases {
		if st := l.(map[string]any)["state"]; st != "revoked" {
			t.Fatalf("lease after failed issuance is %v, want revoked: %v", st, l)
		}
	}
	if !strings.Contains(e.logBuf.String(), "no space left on device") {
		t.Fatalf("the sink's failure was not logged with its cause")
	}
}
