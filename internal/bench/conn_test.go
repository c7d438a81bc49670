package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a test server that counts the connections it accepts.
type server struct {
	*httptest.Server
	conns atomic.Int64
}

func newServer(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := &server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// leases answers POST /v1/credentials with a new lease id and records the
// ids and bearer tokens that POST /v1/leases/{id}/revoke receives.
type leases struct {
	mu       sync.Mutex
	issued   []string
	revoked  []string
	auth     []string
	revokeOK bool
}

func (l *leases) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/credentials", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		id := fmt.Sprintf("lease-%d", len(l.issued)+1)
		l.issued = append(l.issued, id)
		l.mu.Unlock()
		fmt.Fprintf(w, `{"lease_id":%q,"credential":{"password":"x"}}`, id)
	})
	mux.HandleFunc("POST /v1/leases/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.revoked = append(l.revoked, r.PathValue("id"))
		l.auth = append(l.auth, r.Header.Get("Authorization"))
		l.mu.Unlock()
		if !l.revokeOK {
			http.Error(w, `{"error":"not_found"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"lease_id":%q,"state":"revoked"}`, r.PathValue("id"))
	})
	return mux
}

// snapshot copies what the server recorded (its handlers may still run).
func (l *leases) snapshot() (issued, revoked, auth []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.issued), slices.Clone(l.revoked), slices.Clone(l.auth)
}

func TestRun(t *testing.T) {
	const n = 5 // requests per case, on one worker
	fixed := func(status int, body string, header ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	credentials := func(url string) Load { return IssueRevoke(url, "tok", []byte(`{"target":"db"}`), false) }
	revoking := func(url string) Load { return IssueRevoke(url, "tok", []byte(`{"target":"db"}`), true) }
	viaClient := func(url string) Load { return Post(url+"/v1/credentials", "application/json", "tok", nil) }
	cases := []struct {
		name     string
		handler  http.Handler
		leases   *leases // checked after the run, if set
		load     func(url string) Load
		requests int64
		errors   int64
		first    string // wanted in Result.FirstError
		conns    int64  // connections the server accepted
	}{
		{name: "ok keeps one connection", handler: fixed(200, `{"lease_id":"l"}`), load: credentials,
			requests: n, conns: 1},
		{name: "non-200 is an error with its status", handler: fixed(503, `{"error":"unavailable"}`), load: credentials,
			errors: n, first: `status 503: {"error":"unavailable"}`, conns: 1},
		{name: "200 without the expected key is an error", handler: fixed(200, `{"error":"nope"}`), load: credentials,
			errors: n, first: `status 200 without "lease_id"`, conns: 1},
		{name: "connection close redials", handler: fixed(200, `{"lease_id":"l"}`, "Connection", "close"), load: credentials,
			requests: n, conns: n},
		{name: "oversized body redials", handler: fixed(200, `{"lease_id":"l","pad":"`+strings.Repeat("x", maxBody)+`"}`), load: credentials,
			requests: n, conns: n},
		{name: "bad URL", handler: fixed(200, ""), load: func(string) Load { return Spec{URL: "ftp://x/"} },
			errors: 1, first: `unsupported scheme "ftp"`},
		{name: "revoke the issued lease", leases: &leases{revokeOK: true}, load: revoking,
			requests: n, conns: 1},
		{name: "failed revoke is an error", leases: &leases{}, load: revoking,
			errors: n, first: "POST /v1/leases/lease-1/revoke: status 404", conns: 1},
		{name: "net/http path", handler: fixed(200, `{"lease_id":"l"}`), load: viaClient,
			requests: n, conns: 1},
		{name: "net/http path non-200", handler: fixed(500, "boom"), load: viaClient,
			errors: n, first: "status 500: boom", conns: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.handler
			if c.leases != nil {
				h = c.leases.handler()
			}
			srv := newServer(t, h)
			res := Run(t.Context(), c.name, Options{Concurrency: 1, Duration: 10 * time.Second, MaxRequests: n}, c.load(srv.URL))
			if res.Requests != c.requests || res.Errors != c.errors {
				t.Errorf("requests %d, errors %d (first %q); want %d, %d", res.Requests, res.Errors, res.FirstError, c.requests, c.errors)
			}
			if !strings.Contains(res.FirstError, c.first) || (c.first == "") != (res.FirstError == "") {
				t.Errorf("first error %q, want it to contain %q", res.FirstError, c.first)
			}
			if got := srv.conns.Load(); got != c.conns {
				t.Errorf("server accepted %d connections, want %d", got, c.conns)
			}
			if c.leases != nil {
				issued, revoked, auth := c.leases.snapshot()
				if !slices.Equal(revoked, issued) {
					t.Errorf("revoked %v, want the issued %v", revoked, issued)
				}
				if i := slices.IndexFunc(auth, func(a string) bool { return a != "Bearer tok" }); i >= 0 {
					t.Errorf("revoke %d sent Authorization %q", i, auth[i])
				}
			}
		})
	}
}

// TestRunConcurrent checks that workers share a prepared Spec safely (run
// with -race) and each keeps its own connection.
func TestRunConcurrent(t *testing.T) {
	l := &leases{revokeOK: true}
	srv := newServer(t, l.handler())
	res := Run(t.Context(), "c", Options{Concurrency: 4, Duration: 10 * time.Second, MaxRequests: 200}, IssueRevoke(srv.URL, "tok", nil, true))
	if res.Requests != 200 || res.Errors != 0 {
		t.Fatalf("requests %d, errors %d (first %q); want 200, 0", res.Requests, res.Errors, res.FirstError)
	}
	if got := srv.conns.Load(); got > 4 {
		t.Errorf("server accepted %d connections for 4 workers", got)
	}
	issued, revoked, _ := l.snapshot()
	slices.Sort(issued)
	slices.Sort(revoked)
	if !slices.Equal(revoked, issued) {
		t.Errorf("revoked %d leases, issued %d", len(revoked), len(issued))
	}
}

// TestRunStopsBlockedWorker checks that a worker waiting on a server that
// never answers returns promptly when the run's context ends, whether by
// cancellation or by its deadline, without counting an error.
func TestRunStopsBlockedWorker(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the client closed the connection
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	spec := Spec{URL: srv.URL, ContentType: "application/json", Expect: `"lease_id"`}
	cases := []struct {
		name   string
		load   Load
		cancel time.Duration // cancel the parent context after this (0: never)
		dur    time.Duration
	}{
		{name: "cancel", load: spec, cancel: 100 * time.Millisecond, dur: time.Minute},
		{name: "deadline", load: spec, dur: 100 * time.Millisecond},
		{name: "net/http cancel", load: Post(srv.URL, "application/json", "", nil), cancel: 100 * time.Millisecond, dur: time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			if c.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.cancel)
				defer cancel()
			}
			start := time.Now()
			res := Run(ctx, c.name, Options{Concurrency: 2, Duration: c.dur}, c.load)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("Run took %v after its context ended", el)
			}
			if res.Requests != 0 || res.Errors != 0 {
				t.Errorf("requests %d, errors %d (first %q); want 0, 0", res.Requests, res.Errors, res.FirstError)
			}
		})
	}
}
