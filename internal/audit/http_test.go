package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver collects delivered events in arrival order.
type receiver struct {
	mu     sync.Mutex
	events []Event
	auth   []string
	fail   int // answer 503 to this many requests first
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	if rc.fail > 0 {
		rc.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var got []Event
	switch r.Header.Get("Content-Type") {
	case "application/x-ndjson":
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			got = append(got, e)
		}
	default:
		dec := json.NewDecoder(r.Body)
		if strings.HasPrefix(rc.authOr(), "Splunk ") {
			for dec.More() {
				var h struct {
					Time       float64
					Sourcetype string
					Event      Event
				}
				if err := dec.Decode(&h); err != nil || h.Sourcetype != "stint:audit" || h.Time < 1 {
					http.Error(w, "bad hec event", 400)
					return
				}
				got = append(got, h.Event)
			}
		} else if err := dec.Decode(&got); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
	}
	rc.events = append(rc.events, got...)
}

func (rc *receiver) authOr() string { return rc.auth[len(rc.auth)-1] }

func (rc *receiver) got() []Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Event(nil), rc.events...)
}

func TestHTTPSinkDeliversEverythingAfterReceiverOutage(t *testing.T) {
	// Reserve an address and leave it closed: the receiver is down.
	addr := net.JoinHostPort("127.0.0.1", itoa(freePort(t, "tcp")))
	spool := t.TempDir()
	s, err := NewHTTPSink(HTTPOptions{URL: "http://" + addr + "/ingest", Format: "ndjson", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: spool, BatchEvents: 700, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	m := &memSink{}
	l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: m, Required: true}, {Sink: s}}})
	const n = 10000
	for i := range n {
		if err := l.Record(context.Background(), ev(CredentialUse, i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let a few attempts fail
	if got := s.Pending(); got == 0 {
		t.Fatal("nothing spooled while the receiver was down")
	}
	rc := &receiver{fail: 2}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	defer srv.Close()

	deadline := time.Now().Add(30 * time.Second)
	for (len(rc.got()) < n || s.Pending() > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.Close()
	got := rc.got()
	if len(got) != n {
		t.Fatalf("receiver got %d events, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: out of order", i, e.Seq)
		}
		if seen[e.ID] {
			t.Fatalf("event id %s delivered twice", e.ID)
		}
		seen[e.ID] = true
	}
	if s.Pending() != 0 {
		t.Fatalf("spool still holds %d bytes", s.Pending())
	}
}

func TestHTTPSinkFormats(t *testing.T) {
	tests := []struct {
		format, token, wantAuth string
	}{
		{"json", "", ""},
		{"ndjson", "t0k", "Bearer t0k"},
		{"splunk-hec", "hec-token", "Splunk hec-token"},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			rc := &receiver{}
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			srv := &http.Server{Handler: rc}
			go srv.Serve(ln)
			defer srv.Close()
			s, err := NewHTTPSink(HTTPOptions{URL: "http://" + ln.Addr().String(), Format: tc.format, Token: tc.token, Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), RetryMin: 10 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: s, Required: true}}})
			l.RecordAll(context.Background(), ev(AuthSuccess, 1), ev(PolicyDeny, 2), ev(CredentialIssue, 3))
			deadline := time.Now().Add(10 * time.Second)
			for len(rc.got()) < 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			l.Close()
			got := rc.got()
			if len(got) != 3 || got[2].Type != CredentialIssue {
				t.Fatalf("got %+v", got)
			}
			if h, _ := computeHash(&got[1]); h != got[1].Hash {
				t.Fatal("delivered event does not hash to its hash")
			}
			if rc.auth[0] != tc.wantAuth {
				t.Fatalf("Authorization %q, want %q", rc.auth[0], tc.wantAuth)
			}
		})
	}
}

func TestHTTPSinkSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", itoa(freePort(t, "tcp")))
	o := HTTPOptions{URL: "http://" + addr, Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: dir, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}}
	s, _ := NewHTTPSink(o)
	l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: s, Required: true}}})
	l.RecordAll(context.Background(), ev(AuthSuccess, 1), ev(AuthSuccess, 2))
	l.Close()

	rc := &receiver{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	defer srv.Close()
	s, err = NewHTTPSink(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rc.got(); len(got) != 2 || got[0].Seq != 1 {
		t.Fatalf("after restart receiver got %+v", got)
	}
}

func TestHTTPSinkSpoolIsBounded(t *testing.T) {
	s, _ := NewHTTPSink(HTTPOptions{URL: "http://127.0.0.1:1", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), MaxSpoolBytes: 2000}})
	defer s.Close()
	e := ev(AuthSuccess, 1)
	e.Seq, e.Hash = 1, GenesisHash
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = s.Write(context.Background(), []Event{e})
	}
	if err == nil || !strings.Contains(err.Error(), "spool full") {
		t.Fatalf("Write = %v, want spool full", err)
	}
	if s.Pending() > 2000 {
		t.Fatalf("spool holds %d bytes, bound 2000", s.Pending())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
