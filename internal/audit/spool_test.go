package audit

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveAt starts rc on addr (a port reserved earlier) and returns a stop func.
func serveAt(t *testing.T, addr string, rc *receiver) func() {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	return func() { srv.Close() }
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gapRange reads an audit.gap event's details.
func gapRange(t *testing.T, e Event) (dropped, first, last uint64) {
	t.Helper()
	get := func(k string) uint64 {
		switch v := e.Details[k].(type) {
		case float64:
			return uint64(v)
		case json.Number:
			n, _ := v.Int64()
			return uint64(n)
		}
		t.Fatalf("gap event detail %s = %#v", k, e.Details[k])
		return 0
	}
	return get("dropped"), get("first_seq"), get("last_seq")
}

// checkStream checks that a received stream accounts for seqs 1..n exactly
// once, in order, each either delivered or inside one gap event's range,
// and returns the number delivered and the number reported lost.
func checkStream(t *testing.T, got []Event, n uint64) (delivered, lost uint64) {
	t.Helper()
	next := uint64(1)
	for _, e := range got {
		if e.Type == Gap {
			if e.Seq != 0 || e.Hash != "" || e.Outcome != OutcomeFailure {
				t.Fatalf("gap event is not marked as outside the chain: %+v", e)
			}
			d, first, last := gapRange(t, e)
			if first != next || last < first || d != last-first+1 {
				t.Fatalf("gap %d..%d (dropped %d) where seq %d was expected next", first, last, d, next)
			}
			lost += d
			next = last + 1
			continue
		}
		if e.Seq != next {
			t.Fatalf("got seq %d, want %d (stream %v)", e.Seq, next, seqs(got))
		}
		delivered++
		next++
	}
	if next != n+1 {
		t.Fatalf("stream ends before seq %d: next expected %d", n, next)
	}
	return delivered, lost
}

func seqs(evs []Event) []uint64 {
	var s []uint64
	for _, e := range evs {
		s = append(s, e.Seq)
	}
	return s
}

func TestHTTPSinkFullSpoolPolicy(t *testing.T) {
	tests := []struct {
		name   string
		onFull string
		// wantWriteErr: Writes into a full spool fail (fail) or succeed (drop_oldest).
		wantWriteErr bool
	}{
		{"drop_oldest discards the oldest and reports a gap", OnFullDropOldest, false},
		{"fail rejects new events and reports the gap later", OnFullFail, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := net.JoinHostPort("127.0.0.1", itoa(freePort(t, "tcp")))
			s, err := NewHTTPSink(HTTPOptions{URL: "http://" + addr + "/in?api_key=SECRET", Format: "ndjson", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), MaxSpoolBytes: 16 << 10, OnFull: tc.onFull, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if strings.Contains(s.Name(), "SECRET") {
				t.Fatalf("sink name %q shows the URL query", s.Name())
			}
			const n = 200
			var failed int
			for i := 1; i <= n; i++ {
				e := ev(CredentialUse, i)
				e.Seq, e.ID, e.Hash = uint64(i), itoa(i), GenesisHash
				if err := s.Write(context.Background(), []Event{e}); err != nil {
					if !strings.Contains(err.Error(), "spool full") {
						t.Fatal(err)
					}
					failed++
				}
				if st := s.SpoolStats(); st.Bytes > 16<<10 {
					t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, 16<<10)
				}
			}
			st := s.SpoolStats()
			if !st.Full || st.DroppedEvents == 0 {
				t.Fatalf("stats after overfilling: %+v", st)
			}
			if (failed > 0) != tc.wantWriteErr || (tc.wantWriteErr && uint64(failed) != st.DroppedEvents) {
				t.Fatalf("%d writes failed, dropped %d", failed, st.DroppedEvents)
			}
			rc := &receiver{}
			defer serveAt(t, addr, rc)()
			waitFor(t, "spool to drain", func() bool { return s.Pending() == 0 })
			if tc.onFull == OnFullFail {
				// The gap of rejected events is reported with the next write.
				e := ev(CredentialUse, n+1)
				e.Seq, e.ID, e.Hash = n+1, itoa(n+1), GenesisHash
				if err := s.Write(context.Background(), []Event{e}); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "last event", func() bool { g := rc.got(); return len(g) > 0 && g[len(g)-1].Seq == n+1 })
				got := rc.got()
				delivered, lost := checkStream(t, got, n+1)
				if lost != uint64(failed) || delivered != n+1-lost {
					t.Fatalf("delivered %d, lost %d; %d writes failed", delivered, lost, failed)
				}
			} else {
				delivered, lost := checkStream(t, rc.got(), n)
				if lost != s.SpoolStats().DroppedEvents || delivered+lost != n {
					t.Fatalf("delivered %d, gap events report %d lost, sink counted %d", delivered, lost, s.SpoolStats().DroppedEvents)
				}
			}
			if st := s.SpoolStats(); st.GapEvents == 0 || st.Events != 0 {
				t.Fatalf("stats after draining: %+v", st)
			}
		})
	}
}

// TestHTTPSinkDropOldestSparesInFlightBatch drops while a POST is in flight:
// the batch being posted is neither dropped nor delivered twice.
func TestHTTPSinkDropOldestSparesInFlightBatch(t *testing.T) {
	release := make(chan struct{})
	rc := &receiver{}
	first := true
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first {
			first = false
			<-release
		}
		rc.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	s, err := NewHTTPSink(HTTPOptions{URL: "http://" + ln.Addr().String(), Format: "ndjson", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), MaxSpoolBytes: 16 << 10, OnFull: OnFullDropOldest, BatchEvents: 5, RetryMin: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(i int) {
		e := ev(CredentialUse, i)
		e.Seq, e.ID, e.Hash = uint64(i), itoa(i), GenesisHash
		if err := s.Write(context.Background(), []Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		write(i)
	}
	var inflight int64
	waitFor(t, "first POST in flight", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		inflight = s.inflEvts
		return s.inflight > 0
	})
	const n = 300
	for i := 6; i <= n; i++ {
		write(i)
	}
	close(release)
	waitFor(t, "spool to drain", func() bool { return s.Pending() == 0 })
	got := rc.got()
	delivered, lost := checkStream(t, got, n)
	for i := range inflight {
		if got[i].Seq != uint64(i+1) {
			t.Fatalf("in-flight event seq %d not delivered in place: stream %v", i+1, seqs(got))
		}
	}
	if lost == 0 || delivered+lost != n {
		t.Fatalf("stream %v: delivered %d lost %d", seqs(got), delivered, lost)
	}
}
