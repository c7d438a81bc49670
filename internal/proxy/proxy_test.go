package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/policy"
)

const (
	upstreamKey = "sk-upstream-7f3a9c2e51d84b06"
	agentToken  = "agent-token-d41d8cd98f00b204"
	otherToken  = "other-token-9e107d9d372bb682"
)

// fakeBroker authenticates two fixed tokens and decides with allow; it
// keeps every recorded event.
type fakeBroker struct {
	allow func(g core.Grant, req map[string]any) bool

	mu     sync.Mutex
	events []audit.Event
	seen   []map[string]any
}

func (f *fakeBroker) Authenticate(_ context.Context, _ broker.Meta, tok string) (core.Principal, *core.Principal, error) {
	switch tok {
	case agentToken:
		return core.Principal{Provider: "test", Kind: "test", Subject: "agent", ExpiresAt: time.Now().Add(time.Hour)}, nil, nil
	case otherToken:
		return core.Principal{Provider: "test", Kind: "test", Subject: "other"}, nil, nil
	}
	return core.Principal{}, nil, core.Unauthenticated(errors.New("unknown token"))
}

func (f *fakeBroker) Authorize(m broker.Meta, id core.Principal, human *core.Principal, g core.Grant, req map[string]any) (policy.Decision, audit.Event, error) {
	req["target"], req["role"] = g.Target, g.Role
	f.mu.Lock()
	f.seen = append(f.seen, clone(req))
	f.mu.Unlock()
	ev := audit.Event{Type: audit.PolicyAllow, RequestID: m.RequestID, Principal: f.Actor(&id), Target: g.Target, Role: g.Role, Outcome: audit.OutcomeSuccess, Rule: "r"}
	if f.allow != nil && !f.allow(g, req) {
		ev.Type, ev.Outcome = audit.PolicyDeny, audit.OutcomeDenied
		return policy.Decision{}, ev, core.Forbidden("policy does not grant "+g.String(), errors.New("no rule"))
	}
	return policy.Decision{Allow: true, Rule: "r"}, ev, nil
}

func clone(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (f *fakeBroker) Record(_ context.Context, events ...audit.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, events...)
	return nil
}

func (f *fakeBroker) Actor(p *core.Principal) *audit.Actor {
	if p == nil {
		return nil
	}
	return &audit.Actor{Provider: p.Provider, Kind: p.Kind, Subject: p.Subject, Attributes: p.Attributes}
}

func (f *fakeBroker) recorded() []audit.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.Event(nil), f.events...)
}

type staticSource string

func (s staticSource) Credential(context.Context, core.Principal, *core.Principal) (string, error) {
	return string(s), nil
}
func (s staticSource) Kind() string { return "static" }

// echoUpstream requires the key and answers with what it received.
func echoUpstream(t *testing.T, hits *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+upstreamKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		h := map[string]string{}
		for k, v := range r.Header {
			if k != "Authorization" {
				h[k] = strings.Join(v, ",")
			}
		}
		http.SetCookie(w, &http.Cookie{Name: "upstream_session", Value: "s3cr3t"})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "method": r.Method,
			"headers": h, "body_sha256": fmt.Sprintf("%x", sum), "body_len": len(body), "host": r.Host})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type fixture struct {
	b     *fakeBroker
	h     *Handler
	front *httptest.Server
}

func newFixture(t *testing.T, b *fakeBroker, targets ...Target) *fixture {
	t.Helper()
	h, err := New(Options{Broker: b, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	front := httptest.NewServer(mux)
	t.Cleanup(func() { front.Close(); h.Close() })
	return &fixture{b: b, h: h, front: front}
}

func echoTarget(u string) Target {
	pu, _ := url.Parse(u)
	return Target{
		Name: "echo", URL: pu, AuthHeader: "Authorization", AuthFormat: "Bearer {{.Key}}", Credential: staticSource(upstreamKey),
		Routes: []Route{
			{Role: "chat", Methods: []string{"POST"}, Paths: []string{"/v1/chat/completions"}},
			{Role: "models", Methods: []string{"GET"}, Paths: []string{"/v1/models/*"}},
		},
		BodyMaxBytes: 1 << 10, PolicyHeaders: []string{"X-Team"}, StripHeaders: []string{"X-Identity"},
		StripResponseHeaders: []string{"Set-Cookie"},
	}
}

func (f *fixture) do(t *testing.T, method, path, token string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.front.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestKeyArrivesUpstreamAndAgentTokenDoesNot(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	f := newFixture(t, &fakeBroker{}, echoTarget(up.URL))
	body := `{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hi"}]}`
	resp, out := f.do(t, "POST", "/proxy/echo/v1/chat/completions?stream=false&x=%2F", agentToken, strings.NewReader(body), map[string]string{
		"Content-Type": "application/json", "Cookie": "agent_session=abc", "X-Identity": "spoofed", "X-Forwarded-For": "6.6.6.6",
		"X-Team": "support", "Proxy-Authorization": "Basic Zm9vOmJhcg==",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	var got struct {
		Path, Query, Host string
		Headers           map[string]string
		BodySHA256        string `json:"body_sha256"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(body))
	if got.BodySHA256 != fmt.Sprintf("%x", want) {
		t.Errorf("upstream got a different body")
	}
	if got.Path != "/v1/chat/completions" || got.Query != "stream=false&x=%2F" {
		t.Errorf("upstream path/query = %q ? %q", got.Path, got.Query)
	}
	if got.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream Host = %q", got.Host)
	}
	for _, h := range []string{"Cookie", "X-Identity", "X-Forwarded-For", "Proxy-Authorization", "Forwarded"} {
		if v, ok := got.Headers[h]; ok {
			t.Errorf("header %s forwarded upstream: %q", h, v)
		}
	}
	if got.Headers["X-Team"] != "support" {
		t.Errorf("ordinary header not forwarded: %v", got.Headers)
	}
	if strings.Contains(string(out), agentToken) {
		t.Error("the agent's token reached the upstream")
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Error("upstream Set-Cookie passed back")
	}
	f.h.Close()
	evs := f.b.recorded()
	if len(evs) != 2 || evs[0].Type != audit.PolicyAllow || evs[1].Type != audit.CredentialUse {
		t.Fatalf("events = %+v", evs)
	}
	use := evs[1]
	if use.Role != "chat" || use.Details["status"] != 200 || use.Details["bytes_in"] != int64(len(body)) || use.Details["bytes_out"] != int64(len(out)) {
		t.Errorf("credential.use = %+v", use)
	}
	if use.Details["path"] != "/v1/chat/completions" {
		t.Errorf("audited path %v (the query must not be audited)", use.Details["path"])
	}
	all, _ := json.Marshal(evs)
	for _, secret := range []string{upstreamKey, agentToken, "gpt-4.1-mini"} {
		if bytes.Contains(all, []byte(secret)) || bytes.Contains(out, []byte(upstreamKey)) {
			t.Errorf("%q appears in audit events or the response", secret)
		}
	}
	seen := f.b.seen[0]
	if seen["method"] != "POST" || seen["path"] != "/v1/chat/completions" {
		t.Errorf("policy request = %v", seen)
	}
	if hs := seen["headers"].(map[string]any); hs["x-team"] != "support" || len(hs) != 1 {
		t.Errorf("policy headers = %v (only the allow-list)", hs)
	}
	if m, _ := seen["body"].(map[string]any); m["model"] != "gpt-4.1-mini" {
		t.Errorf("policy body = %v", seen["body"])
	}
}

func TestRejectionsNeverReachUpstream(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	f := newFixture(t, &fakeBroker{allow: func(g core.Grant, req map[string]any) bool {
		m, _ := req["body"].(map[string]any)
		return g.Role != "chat" || m["model"] == "gpt-4.1-mini"
	}}, echoTarget(up.URL))
	cases := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "GET", "/proxy/echo/v1/models/x", "", "", 401},
		{"bad token", "GET", "/proxy/echo/v1/models/x", "nope", "", 401},
		{"unknown target", "GET", "/proxy/elsewhere/v1/models/x", agentToken, "", 404},
		{"path of no role", "GET", "/proxy/echo/v1/files", agentToken, "", 403},
		{"prefix needs the slash", "GET", "/proxy/echo/v1/models", agentToken, "", 403},
		{"method of no role", "DELETE", "/proxy/echo/v1/models/x", agentToken, "", 403},
		{"body model denied", "POST", "/proxy/echo/v1/chat/completions", agentToken, `{"model":"gpt-5-pro"}`, 403},
		{"body not JSON", "POST", "/proxy/echo/v1/chat/completions", agentToken, `model=gpt-4.1-mini`, 403},
		{"encoded slash", "GET", "/proxy/echo/v1/models/a%2F..%2F..%2Fadmin", agentToken, "", 400},
		{"encoded dot segment", "GET", "/proxy/echo/v1/models/%2e%2e/%2e%2e/admin", agentToken, "", 400},
		{"encoded backslash", "GET", "/proxy/echo/v1/models/a%5c..", agentToken, "", 400},
		{"escaped target name", "GET", "/proxy/%65cho/v1/models/x", agentToken, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := hits.Load()
			var body io.Reader
			hdr := map[string]string{}
			if c.body != "" {
				body = strings.NewReader(c.body)
				hdr["Content-Type"] = "application/json"
			}
			resp, out := f.do(t, c.method, c.path, c.token, body, hdr)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.want, out)
			}
			var e map[string]string
			if json.Unmarshal(out, &e) != nil || e["error"] == "" {
				t.Errorf("want a JSON error, got %s", out)
			}
			if hits.Load() != before {
				t.Error("the request reached the upstream")
			}
		})
	}
	// The allowed model passes, so the denials above were about the model.
	resp, out := f.do(t, "POST", "/proxy/echo/v1/chat/completions", agentToken, strings.NewReader(`{"model":"gpt-4.1-mini"}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("allowed model: %d %s", resp.StatusCode, out)
	}
	f.h.Close()
	denies := 0
	for _, e := range f.b.recorded() {
		if e.Type == audit.PolicyDeny {
			denies++
		}
	}
	if denies != 10 { // every authenticated rejection is audited
		t.Errorf("policy.deny events = %d, want 10", denies)
	}
}

func TestAbsoluteFormRequestIsRefused(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	f := newFixture(t, &fakeBroker{}, echoTarget(up.URL))
	// An absolute-form URI names a host of the caller's choosing; Go's
	// client never sends one to a non-proxy, so write it by hand.
	for _, target := range []string{up.URL + "/proxy/echo/v1/models/x", "http://evil.invalid/proxy/echo/v1/models/x"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.front.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: evil.invalid\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, agentToken)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, resp.StatusCode)
		}
	}
	if hits.Load() != 0 {
		t.Error("an absolute-form request reached the upstream")
	}
}

func TestProtocolUpgradeIsNotForwarded(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	f := newFixture(t, &fakeBroker{}, echoTarget(up.URL))
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /proxy/echo/v1/models/x HTTP/1.1\r\nHost: stint\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade, X-Team\r\nUpgrade: websocket\r\nX-Team: support\r\n\r\n", agentToken)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	var got struct{ Headers map[string]string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Upgrade", "Connection"} {
		if v, ok := got.Headers[h]; ok {
			t.Errorf("header %s forwarded upstream: %q", h, v)
		}
	}
}

func TestRedirectIsPassedBackNotFollowed(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	}))
	defer up.Close()
	f := newFixture(t, &fakeBroker{}, echoTarget(up.URL))
	req, _ := http.NewRequest("GET", f.front.URL+"/proxy/echo/v1/models/x", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL+"/steal" {
		t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if otherHits.Load() != 0 {
		t.Error("the proxy followed the redirect")
	}
}

func TestServerSentEventsStreamBeforeUpstreamFinishes(t *testing.T) {
	release := make(chan struct{})
	var finished atomic.Int64 // unix nanos when the upstream ended its response
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		// Hold the stream open until the client has seen the first event:
		// a buffering proxy would deadlock here and the test time out.
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
		finished.Store(time.Now().UnixNano())
	}))
	defer up.Close()
	tg := echoTarget(up.URL)
	tg.Routes = []Route{{Role: "chat", Methods: []string{"POST"}, Paths: []string{"/v1/chat/completions"}}}
	f := newFixture(t, &fakeBroker{}, tg)
	req, _ := http.NewRequest("POST", f.front.URL+"/proxy/echo/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	firstAt := time.Now().UnixNano()
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest = %q", rest)
	}
	if end := finished.Load(); end == 0 || firstAt >= end {
		t.Errorf("first event at %d, upstream finished at %d: the stream was buffered", firstAt, end)
	}
}

func TestLargeUploadStreamsWithoutBodyPolicy(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	b := &fakeBroker{}
	f := newFixture(t, b, echoTarget(up.URL))
	big := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 4096) // 100 KiB, over BodyMaxBytes
	payload := append(append([]byte(`[`), big...), []byte(`{}]`)...)
	for _, known := range []bool{true, false} {
		var body io.Reader = bytes.NewReader(payload)
		if !known {
			body = io.MultiReader(bytes.NewReader(payload)) // unknown length: chunked
		}
		resp, out := f.do(t, "POST", "/proxy/echo/v1/chat/completions", agentToken, body, map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var got struct {
			BodyLen int    `json:"body_len"`
			Sum     string `json:"body_sha256"`
		}
		_ = json.Unmarshal(out, &got)
		if got.BodyLen != len(payload) || got.Sum != fmt.Sprintf("%x", sha256.Sum256(payload)) {
			t.Errorf("known length %v: upstream got %d bytes", known, got.BodyLen)
		}
	}
	for _, s := range b.seen {
		if _, ok := s["body"]; ok {
			t.Error("policy saw a body larger than BodyMaxBytes")
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRateLimitPerPrincipalAnswers429(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tg := echoTarget(up.URL)
	tg.PerPrincipal = Limit{RatePerSecond: 1, Burst: 2}
	b := &fakeBroker{}
	h, err := New(Options{Broker: b, Targets: []Target{tg}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	front := httptest.NewServer(mux)
	defer front.Close()
	f := &fixture{b: b, h: h, front: front}
	codes := []int{}
	for i := 0; i < 3; i++ {
		resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/m", agentToken, nil, nil)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
		}
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("codes %v, want [200 200 429]", codes)
	}
	if resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/m", otherToken, nil, nil); resp.StatusCode != 200 {
		t.Errorf("another principal was limited too: %d", resp.StatusCode)
	}
	clk.add(time.Second)
	if resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/m", agentToken, nil, nil); resp.StatusCode != 200 {
		t.Errorf("after refill: %d", resp.StatusCode)
	}
	h.Close()
	limited := 0
	for _, e := range b.recorded() {
		if e.Type == audit.CredentialUse && e.Outcome == audit.OutcomeDenied && e.Details["status"] == 429 {
			limited++
		}
	}
	if limited != 1 || hits.Load() != 4 {
		t.Errorf("limited events %d (want 1), upstream hits %d (want 4)", limited, hits.Load())
	}
}

func TestConcurrencyLimitPerUpstream(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer up.Close()
	tg := echoTarget(up.URL)
	tg.PerUpstream = Limit{MaxConcurrent: 1}
	f := newFixture(t, &fakeBroker{}, tg)
	done := make(chan int)
	go func() {
		resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/a", agentToken, nil, nil)
		done <- resp.StatusCode
	}()
	<-entered
	resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/b", otherToken, nil, nil)
	if resp.StatusCode != 429 {
		t.Errorf("second concurrent request: %d, want 429", resp.StatusCode)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("first request: %d", code)
	}
}

func TestOAuth2TokenFetchedOnceAndCachedUntilExpiry(t *testing.T) {
	var tokenRequests atomic.Int64
	var current atomic.Value
	issue := func() string { return fmt.Sprintf("oauth-token-%d", tokenRequests.Load()) }
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "client-1" || secret != "client-secret-1" || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "read write" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		tokenRequests.Add(1)
		tok := issue()
		current.Store(tok)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":120}`, tok)
	}))
	defer tokenSrv.Close()
	var upHits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upHits.Add(1)
		cur, _ := current.Load().(string)
		if r.Header.Get("Authorization") != "Bearer "+cur {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	src, err := NewOAuth2(OAuth2Config{TokenURL: tokenSrv.URL, ClientID: "client-1", ClientSecret: "client-secret-1", Scopes: []string{"read", "write"}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	tg := echoTarget(up.URL)
	tg.Credential = src
	f := newFixture(t, &fakeBroker{}, tg)
	get := func() int {
		resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/m", agentToken, nil, nil)
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := get(); c != 200 {
				t.Errorf("status %d", c)
			}
		}()
	}
	wg.Wait()
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("token requests after 8 concurrent calls = %d, want 1", n)
	}
	clk.add(80 * time.Second) // still within expires_in − 30 s
	get()
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("token requests before expiry = %d, want 1", n)
	}
	clk.add(20 * time.Second) // past expires_in − 30 s
	if c := get(); c != 200 {
		t.Fatalf("after renewal: %d", c)
	}
	if n := tokenRequests.Load(); n != 2 {
		t.Fatalf("token requests after expiry = %d, want 2", n)
	}
	// The upstream rejecting the cached token makes the next call fetch anew.
	current.Store("revoked-elsewhere")
	if c := get(); c != 401 {
		t.Fatalf("with a revoked token: %d", c)
	}
	if c := get(); c != 200 || tokenRequests.Load() != 3 {
		t.Fatalf("after a 401: status %d, token requests %d (want 200, 3)", c, tokenRequests.Load())
	}
}

func TestOAuth2ErrorDoesNotLeakSecret(t *testing.T) {
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"bad secret client-secret-1"}`)
	}))
	defer tokenSrv.Close()
	src, _ := NewOAuth2(OAuth2Config{TokenURL: tokenSrv.URL, ClientID: "c", ClientSecret: "client-secret-1"})
	_, err := src.Credential(context.Background(), core.Principal{}, nil)
	if err == nil || strings.Contains(err.Error(), "client-secret-1") || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("err = %v", err)
	}
}

func TestUnixPeerCredentialsArePrincipal(t *testing.T) {
	var hits atomic.Int64
	up := echoUpstream(t, &hits)
	b := &fakeBroker{}
	h, err := New(Options{Broker: b, Targets: []Target{echoTarget(up.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := ListenUnix(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	srv := &http.Server{Handler: mux, ConnContext: PeerContext}
	go srv.Serve(ln)
	defer srv.Close()
	if fi, _ := os.Stat(sock); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode().Perm())
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://local/proxy/echo/v1/models/m")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.Close()
	evs := b.recorded()
	want := fmt.Sprintf("uid:%d", os.Getuid())
	if len(evs) != 2 || evs[1].Principal.Subject != want || evs[1].Principal.Provider != PeerProvider || evs[1].Source != "unix-socket" {
		t.Errorf("events = %+v, want principal %s", evs, want)
	}
	// Over TCP the same request without a token is refused.
	f := newFixture(t, &fakeBroker{}, echoTarget(up.URL))
	if resp, _ := f.do(t, "GET", "/proxy/echo/v1/models/m", "", nil, nil); resp.StatusCode != 401 {
		t.Errorf("tcp without token: %d", resp.StatusCode)
	}
}

func TestUpstreamDownIs502AndAudited(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b := &fakeBroker{}
	f := newFixture(t, b, echoTarget("http://"+addr))
	resp, out := f.do(t, "GET", "/proxy/echo/v1/models/m?api_key=should-not-be-audited", agentToken, nil, nil)
	if resp.StatusCode != 502 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	f.h.Close()
	evs := b.recorded()
	if len(evs) != 2 || evs[1].Outcome != audit.OutcomeFailure || evs[1].Details["status"] != 502 {
		t.Fatalf("events %+v", evs)
	}
	if all, _ := json.Marshal(evs); bytes.Contains(all, []byte("should-not-be-audited")) {
		t.Error("the query string reached the audit event")
	}
}
