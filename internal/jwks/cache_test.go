package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func ecKey(t *testing.T, kid string) (jose.JSONWebKey, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}, k
}

func marshalSet(t *testing.T, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWKS that tests can swap, counting fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	status  int
	gate    chan struct{} // when non-nil, each fetch waits on it
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, gate := s.body, s.status, s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss := "http://" + r.Host
		if r.URL.Query().Get("x") != "" {
			iss = "https://elsewhere"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": iss + "/jwks"})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

func TestURLRefreshOnUnknownKIDHonoursFloor(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	k2, _ := ecKey(t, "k2")
	srv := newJWKSServer(t, marshalSet(t, k1))
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	var refreshes, failures atomic.Int64
	c, err := New(context.Background(), Options{URL: srv.URL + "/jwks", Now: clk.Now, OnRefresh: func(src string, err error) {
		refreshes.Add(1)
		if err != nil {
			failures.Add(1)
		}
		if src != srv.URL+"/jwks" {
			t.Errorf("OnRefresh source = %q", src)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		name      string
		advance   time.Duration
		kid       string
		wantErr   bool
		wantFetch int64
	}{
		{"known kid uses the cache", 0, "k1", false, 1},
		{"unknown kid within the floor does not fetch", time.Second, "k2", true, 1},
		{"many unknown kids within the floor do not fetch", 0, "k9", true, 1},
		{"unknown kid after the floor fetches once", 30 * time.Second, "k9", true, 2},
		{"and the next miss waits for the floor again", time.Second, "k8", true, 2},
	}
	for _, st := range steps {
		clk.Add(st.advance)
		_, err := c.Key(ctx, st.kid)
		if (err != nil) != st.wantErr || (err != nil && !errors.Is(err, ErrUnknownKID)) {
			t.Fatalf("%s: err = %v", st.name, err)
		}
		if got := srv.fetches.Load(); got != st.wantFetch {
			t.Fatalf("%s: fetches = %d, want %d", st.name, got, st.wantFetch)
		}
	}

	// Rotation: the new kid appears after the floor.
	srv.set(marshalSet(t, k1, k2), 200)
	clk.Add(30 * time.Second)
	if _, err := c.Key(ctx, "k2"); err != nil {
		t.Fatalf("rotated kid: %v", err)
	}
	// Issuer outage: the old set keeps serving.
	srv.set([]byte("oops"), 500)
	clk.Add(30 * time.Second)
	if _, err := c.Key(ctx, "k7"); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("unknown kid during outage: %v", err)
	}
	if _, err := c.Key(ctx, "k2"); err != nil {
		t.Fatalf("old key during outage: %v", err)
	}
	if refreshes.Load() != 4 || failures.Load() != 1 {
		t.Fatalf("OnRefresh calls = %d (failures %d), want 4 (1)", refreshes.Load(), failures.Load())
	}
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	srv := newJWKSServer(t, marshalSet(t, k1))
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c, err := New(context.Background(), Options{URL: srv.URL + "/jwks", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := ecKey(t, "k2")
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.body, srv.gate = marshalSet(t, k1, k2), gate
	srv.mu.Unlock()
	clk.Add(time.Minute)

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Key(context.Background(), "k2")
			errs <- err
		}()
	}
	for srv.fetches.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the rest pile up behind the fetch
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a waiting miss failed: %v", err)
		}
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (start + one shared refresh)", got)
	}
}

func TestMaxAgeRefreshesInBackground(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	srv := newJWKSServer(t, marshalSet(t, k1))
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c, err := New(context.Background(), Options{URL: srv.URL + "/jwks", Now: clk.Now, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv.set(marshalSet(t), 200) // the issuer dropped k1
	clk.Add(59 * time.Minute)
	if _, err := c.Key(context.Background(), "k1"); err != nil || srv.fetches.Load() != 1 {
		t.Fatalf("young set: err %v, fetches %d", err, srv.fetches.Load())
	}
	clk.Add(2 * time.Minute)
	if _, err := c.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("stale but known key should still be served: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.fetches.Load() != 2 {
		t.Fatalf("fetches = %d, want a background refresh", srv.fetches.Load())
	}
	// The refreshed set had no usable key, so it was refused and k1 stays.
	if _, err := c.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("after a refused refresh: %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	srv := newJWKSServer(t, marshalSet(t, k1))
	c, err := New(context.Background(), Options{Issuer: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Options{Issuer: srv.URL + "?x=1"}); err == nil {
		t.Fatal("discovery document naming another issuer was accepted")
	}
}

func TestTLSURL(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(marshalSet(t, k1)) }))
	defer srv.Close()
	c, err := New(context.Background(), Options{URL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
}

func TestFileIsReread(t *testing.T) {
	k1, _ := ecKey(t, "k1")
	k2, _ := ecKey(t, "k2")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, marshalSet(t, k1), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c, err := New(context.Background(), Options{File: path, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, marshalSet(t, k1, k2), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(context.Background(), "k2"); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("within the floor: %v", err)
	}
	clk.Add(31 * time.Second)
	if _, err := c.Key(context.Background(), "k2"); err != nil {
		t.Fatalf("after the floor: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	ec, ecPriv := ecKey(t, "k1")
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	private := jose.JSONWebKey{Key: ecPriv, KeyID: "p"}
	privRSA := jose.JSONWebKey{Key: rsaPriv, KeyID: "r"}
	symmetric := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "s", Algorithm: "HS256"}
	cases := []struct {
		name string
		body []byte
		opts func(*Options)
	}{
		{"private EC key in the set", marshalSet(t, ec, private), nil},
		{"private RSA key in the set", marshalSet(t, ec, privRSA), nil},
		{"symmetric key in the set", marshalSet(t, ec, symmetric), nil},
		{"only a weak RSA key", marshalSet(t, jose.JSONWebKey{Key: weak.Public(), KeyID: "w"}), nil},
		{"empty set", marshalSet(t), nil},
		{"duplicate kid", marshalSet(t, ec, ec), nil},
		{"not JSON", []byte("<html>"), nil},
		{"larger than MaxBytes", marshalSet(t, ec), func(o *Options) { o.MaxBytes = 64 }},
		{"no source", nil, func(o *Options) { o.URL = "" }},
		{"two sources", nil, func(o *Options) { o.File = "/x" }},
		{"plain http to a remote host", nil, func(o *Options) { o.URL = "http://keys.example.com/jwks" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, tc.body)
			o := Options{URL: srv.URL + "/jwks"}
			if tc.opts != nil {
				tc.opts(&o)
			}
			if _, err := New(context.Background(), o); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestParseSkipsUnusableKeys(t *testing.T) {
	ec, _ := ecKey(t, "k1")
	body := strings.Replace(string(marshalSet(t, ec)), `"keys":[`,
		`"keys":[{"kty":"OKP","crv":"X25519","x":"AAAA","kid":"x"},{"kty":"EC","use":"enc","crv":"P-256","kid":"e"},`, 1)
	keys, err := parseSet([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["k1"].KeyID != "k1" {
		t.Fatalf("keys = %v", keys)
	}
}

func TestStaticSetKeepsOnlyPublicKeys(t *testing.T) {
	ec, ecPriv := ecKey(t, "k1")
	c := NewStatic(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ecPriv, KeyID: "priv"}, ec, {Key: []byte("secret-secret-secret-secret!!!!!"), KeyID: "sym"},
	}})
	k, err := c.Key(context.Background(), "priv")
	if err != nil {
		t.Fatal(err)
	}
	if !k.IsPublic() {
		t.Fatal("static set handed out a private key")
	}
	if _, err := c.Key(context.Background(), "sym"); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("symmetric key: %v", err)
	}
	if _, err := c.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
}
