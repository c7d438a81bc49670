package app_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/devcluster"
)

// env is one running stint with the demo identity providers.
type env struct {
	t      testing.TB
	dir    string
	url    string
	app    *app.App
	logBuf *lockedBuffer
}

const testConfig = `
server:
  store: sqlite://{{dir}}/stint.db
  issuer_url: {{url}}
identity_providers:
  - name: dev-cluster
    type: kubernetes
    issuer: https://dev-cluster.stint.local
    jwks_file: {{dir}}/dev-cluster-jwks.json
    attributes: { cluster: dev }
  - name: dev-sso
    type: oidc
    issuer: https://dev-sso.stint.local
    jwks_file: {{dir}}/dev-sso-jwks.json
targets:
  - name: demo-api
    type: jwt
    roles:
      read:
        audience: https://api.demo.local
        scopes: [orders:read, orders:write]
        default_ttl: 5m
        claims: { ns: "{{ .identity.namespace }}" }
policies:
  - name: agents-read
    grants: [demo-api/read]
    max_ttl: 10m
    when: identity.provider == "dev-cluster" && identity.namespace == "agents"
  - name: no-interns
    deny: true
    grants: [demo-api/*]
    when: has(human.groups) && "interns" in human.groups
  - name: admins
    grants: [stint/admin]
    when: identity.provider == "dev-sso" && has(identity.groups) && "stint-admins" in identity.groups
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env { return newEnvConfig(t, testConfig) }

// newEnvConfig starts a server from a config text in which {{dir}} is the
// test's directory and {{url}} the server's URL.
func newEnvConfig(t testing.TB, configText string) *env {
	t.Helper()
	return newEnvWith(t, configText, nil)
}

// newEnvWith is newEnvConfig with a hook that runs on the loaded config
// before the server starts (e.g. to seal an upstream key into the store).
func newEnvWith(t testing.TB, configText string, before func(*config.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	if err := devcluster.Init(dir); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, logBuf: &lockedBuffer{}}
	// The issuer URL must be known before the server starts; reserve it.
	ts := httptest.NewUnstartedServer(nil)
	e.url = "http://" + ts.Listener.Addr().String()
	text := strings.NewReplacer("{{dir}}", dir, "{{url}}", e.url).Replace(configText)
	path := filepath.Join(dir, "stint.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(cfg)
	}
	log := slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(context.Background(), cfg, app.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.app = a
	ts.Config.Handler = a.Server
	ts.Start()
	t.Cleanup(func() { ts.Close(); a.Close() })
	return e
}

// lockedBuffer collects the server's log: the server writes from its own
// goroutines while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *env) workload(ns, sa string) string {
	tok, err := devcluster.MintWorkload(e.dir, devcluster.Workload{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) human(user string, groups ...string) string {
	tok, err := devcluster.MintHuman(e.dir, devcluster.Human{User: user, Groups: groups})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) exchange(form url.Values) (int, map[string]any) {
	e.t.Helper()
	if form.Get("grant_type") == "" {
		form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	}
	if form.Get("subject_token_type") == "" {
		form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
	}
	resp, err := http.PostForm(e.url+"/oauth2/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	return decode(e.t, resp)
}

func (e *env) post(path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return decode(e.t, resp)
}

func decode(t testing.TB, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// verify checks a stint token with go-jose against the served JWKS and
// discovery document, as any relying party would.
func (e *env) verify(tok, aud string) map[string]any {
	e.t.Helper()
	resp, err := http.Get(e.url + "/.well-known/openid-configuration")
	if err != nil {
		e.t.Fatal(err)
	}
	_, disc := decode(e.t, resp)
	if disc["issuer"] != e.url {
		e.t.Fatalf("discovery issuer %v", disc["issuer"])
	}
	resp, err = http.Get(disc["jwks_uri"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	for _, k := range set.Keys {
		if !k.IsPublic() {
			e.t.Fatal("JWKS holds a private key")
		}
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		e.t.Fatal(err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q not in JWKS", parsed.Headers[0].KeyID)
	}
	var std jwt.Claims
	all := map[string]any{}
	if err := parsed.Claims(keys[0].Key, &std, &all); err != nil {
		e.t.Fatalf("signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: e.url, AnyAudience: jwt.Audience{aud}, Time: time.Now()}, 0); err != nil {
		e.t.Fatalf("claims: %v", err)
	}
	return all
}

func TestExchangeSessionToken(t *testing.T) {
	e := newEnv(t)
	code, res := e.exchange(url.Values{"subject_token": {e.workload("agents", "support-bot")}})
	if code != 200 {
		t.Fatalf("status %d: %v", code, res)
	}
	if res["issued_token_type"] != "urn:ietf:params:oauth:token-type:jwt" || res["token_type"] != "Bearer" {
		t.Fatalf("response %v", res)
	}
	c := e.verify(res["access_token"].(string), e.url)
	if c["sub"] != "system:serviceaccount:agents:support-bot" || c["stint_provider"] != "dev-cluster" {
		t.Fatalf("claims %v", c)
	}
	// The session token is accepted wherever a platform token is: exchange it again.
	code, res2 := e.exchange(url.Values{"subject_token": {res["access_token"].(string)}, "audience": {"https://api.demo.local"}})
	if code != 200 {
		t.Fatalf("exchange of a session token: %d %v", code, res2)
	}
	c2 := e.verify(res2["access_token"].(string), "https://api.demo.local")
	if c2["sub"] != c["sub"] || c2["ns"] != "agents" || c2["scope"] != "orders:read orders:write" {
		t.Fatalf("access token claims %v", c2)
	}
}

func TestExchangeAccessTokenScopesAndPolicy(t *testing.T) {
	e := newEnv(t)
	agent := e.workload("agents", "support-bot")
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
		scope  string
	}{
		{"scope capped to the role", url.Values{"subject_token": {agent}, "audience": {"https://api.demo.local"}, "scope": {"orders:read admin:all"}}, 200, "", "orders:read"},
		{"resource works like audience", url.Values{"subject_token": {agent}, "resource": {"https://api.demo.local"}}, 200, "", "orders:read orders:write"},
		{"no allowed scope", url.Values{"subject_token": {agent}, "audience": {"https://api.demo.local"}, "scope": {"admin:all"}}, 400, "invalid_scope", ""},
		{"unknown audience", url.Values{"subject_token": {agent}, "audience": {"https://other"}}, 400, "invalid_target", ""},
		{"two audiences", url.Values{"subject_token": {agent}, "audience": {"https://api.demo.local", "https://x"}}, 400, "invalid_target", ""},
		{"policy denies another namespace", url.Values{"subject_token": {e.workload("default", "web")}, "audience": {"https://api.demo.local"}}, 403, "access_denied", ""},
		{"wrong grant type", url.Values{"subject_token": {agent}, "grant_type": {"client_credentials"}}, 400, "unsupported_grant_type", ""},
		{"bad token type", url.Values{"subject_token": {agent}, "subject_token_type": {"urn:x"}}, 400, "invalid_request", ""},
		{"missing subject token", url.Values{}, 400, "invalid_request", ""},
		{"actor token without type", url.Values{"subject_token": {agent}, "actor_token": {agent}, "actor_token_type": {"-"}}, 400, "invalid_request", ""},
		{"garbage subject token", url.Values{"subject_token": {"not.a.jwt"}}, 400, "invalid_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "actor token without type" {
				tc.form.Del("actor_token_type")
			}
			code, res := e.exchange(tc.form)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, res)
			}
			if tc.code != "" && res["error"] != tc.code {
				t.Fatalf("error %v, want %s", res["error"], tc.code)
			}
			if tc.status == 200 && res["scope"] != tc.scope {
				t.Fatalf("scope %v, want %q", res["scope"], tc.scope)
			}
			if tc.status != 200 && res["error_description"] == "" {
				t.Fatal("no error_description")
			}
		})
	}
}

// RFC 8693 §4.1: with an actor token, sub is the subject and act the actor, nested for chains.
func TestExchangeActorChain(t *testing.T) {
	e := newEnv(t)
	alice := e.human("alice", "support")
	agent := e.workload("agents", "support-bot")
	code, res := e.exchange(url.Values{"subject_token": {alice}, "actor_token": {agent}, "actor_token_type": {"urn:ietf:params:oauth:token-type:jwt"}})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	first := res["access_token"].(string)
	c := e.verify(first, e.url)
	act, _ := c["act"].(map[string]any)
	if c["sub"] != "alice" || act == nil || act["sub"] != "system:serviceaccount:agents:support-bot" {
		t.Fatalf("claims %v", c)
	}
	// A second actor: the chain nests, newest actor outermost.
	sub := e.workload("agents", "planner")
	code, res = e.exchange(url.Values{"subject_token": {first}, "actor_token": {sub}, "actor_token_type": {"urn:ietf:params:oauth:token-type:jwt"}})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	c = e.verify(res["access_token"].(string), e.url)
	act, _ = c["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if c["sub"] != "alice" || act["sub"] != "system:serviceaccount:agents:planner" || inner["sub"] != "system:serviceaccount:agents:support-bot" {
		t.Fatalf("nested act %v", c)
	}
	// The paired token names the workload as actor: credentials go to it, for alice.
	code, cred := e.post("/v1/credentials", first, map[string]any{"target": "demo-api", "role": "read"})
	if code != 200 {
		t.Fatalf("%d %v", code, cred)
	}
	tok := cred["credential"].(map[string]any)["access_token"].(string)
	cc := e.verify(tok, "https://api.demo.local")
	if cc["sub"] != "alice" || cc["act"].(map[string]any)["sub"] != "system:serviceaccount:agents:support-bot" {
		t.Fatalf("credential claims %v", cc)
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t)
	agent := e.workload("agents", "support-bot")
	cases := []struct {
		name   string
		token  string
		body   map[string]any
		status int
	}{
		{"granted", agent, map[string]any{"target": "demo-api", "role": "read", "ttl": "5m"}, 200},
		{"on behalf of a human", agent, map[string]any{"target": "demo-api", "role": "read", "on_behalf_of": e.human("bob", "support")}, 200},
		{"deny rule overrides for interns", agent, map[string]any{"target": "demo-api", "role": "read", "on_behalf_of": e.human("carol", "interns")}, 403},
		{"ttl above max_ttl", agent, map[string]any{"target": "demo-api", "role": "read", "ttl": "1h"}, 400},
		{"unknown target", agent, map[string]any{"target": "nope", "role": "read"}, 400},
		{"unknown role", agent, map[string]any{"target": "demo-api", "role": "write"}, 400},
		{"unknown field", agent, map[string]any{"target": "demo-api", "role": "read", "tll": "5m"}, 400},
		{"bad ttl", agent, map[string]any{"target": "demo-api", "role": "read", "ttl": "soon"}, 400},
		{"no token", "", map[string]any{"target": "demo-api", "role": "read"}, 401},
		{"bad token", "abc.def.ghi", map[string]any{"target": "demo-api", "role": "read"}, 401},
		{"denied namespace", e.workload("default", "web"), map[string]any{"target": "demo-api", "role": "read"}, 403},
		{"bad human token", agent, map[string]any{"target": "demo-api", "role": "read", "on_behalf_of": "x.y.z"}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, res := e.post("/v1/credentials", tc.token, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, res)
			}
			if code != 200 {
				if res["error"] == nil || res["error_description"] == nil {
					t.Fatalf("error body %v", res)
				}
				return
			}
			if res["lease_id"] == "" || res["expires_at"] == nil {
				t.Fatalf("response %v", res)
			}
			c := e.verify(res["credential"].(map[string]any)["access_token"].(string), "https://api.demo.local")
			if c["jti"] != res["lease_id"] {
				t.Fatalf("jti %v != lease %v", c["jti"], res["lease_id"])
			}
		})
	}
	// The caller sees its leases; another workload does not.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/leases", nil)
	req.Header.Set("Authorization", "Bearer "+agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, list := decode(t, resp)
	if n := len(list["leases"].([]any)); n != 2 {
		t.Fatalf("agent sees %d leases, want 2", n)
	}
	req.Header.Set("Authorization", "Bearer "+e.workload("agents", "other"))
	resp, _ = http.DefaultClient.Do(req)
	_, list = decode(t, resp)
	if n := len(list["leases"].([]any)); n != 0 {
		t.Fatalf("another workload sees %d leases", n)
	}
}

func TestPolicyEvaluateNeedsAdmin(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"identity": map[string]any{"provider": "dev-cluster", "subject": "x", "attributes": map[string]any{"namespace": "agents"}}, "grant": "demo-api/read"}
	if code, _ := e.post("/v1/policy/evaluate", e.workload("agents", "support-bot"), body); code != 403 {
		t.Fatalf("non-admin got %d", code)
	}
	code, res := e.post("/v1/policy/evaluate", e.human("root", "stint-admins"), body)
	if code != 200 {
		t.Fatalf("admin got %d %v", code, res)
	}
	d := res["Decision"].(map[string]any)
	if d["Allow"] != true || d["Rule"] != "agents-read" {
		t.Fatalf("decision %v", d)
	}
}

// Every presented-token rejection is a 4xx with one public message and an
// audit event with the precise reason; never a 500.
func TestRejectedTokensAreAudited(t *testing.T) {
	e := newEnv(t)
	good := e.workload("agents", "support-bot")
	parts := strings.Split(good, ".")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign, _ := jwt.Signed(mustSigner(t, other)).Claims(map[string]any{"iss": devcluster.ClusterIssuer, "aud": "stint", "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
	expired, _ := devcluster.MintWorkload(e.dir, devcluster.Workload{Namespace: "agents", ServiceAccount: "a", Now: time.Now().Add(-3 * time.Hour), TTL: time.Hour})
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	cases := map[string]string{
		"bad signature":    parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"foreign key":      foreign,
		"expired":          expired,
		"alg none":         none,
		"too large":        parts[0] + "." + strings.Repeat("A", 17<<10) + "." + parts[2],
		"malformed base64": parts[0] + ".!!!." + parts[2],
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			code, res := e.post("/v1/credentials", tok, map[string]any{"target": "demo-api", "role": "read"})
			if code != 401 || res["error_description"] != "invalid identity token" {
				t.Fatalf("%d %v", code, res)
			}
		})
	}
	e.app.Audit.Close()
	n := 0
	readAudit(t, e.dir, func(ev audit.Event) {
		if ev.Type == audit.AuthFailure {
			n++
			if ev.Error == "" {
				t.Errorf("auth.failure without reason: %+v", ev)
			}
		}
	})
	if n < len(cases) {
		t.Fatalf("%d auth.failure events, want %d", n, len(cases))
	}
}

func mustSigner(t *testing.T, k *ecdsa.PrivateKey) jose.Signer {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "foreign"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAudit(t *testing.T, dir string, fn func(audit.Event)) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		fn(ev)
	}
}

// No token minted or presented appears in the audit record or the log,
// and the record's chain verifies.
func TestNoSecretInAuditOrLogs(t *testing.T) {
	e := newEnv(t)
	agent := e.workload("agents", "support-bot")
	alice := e.human("alice", "support")
	var secrets []string
	secrets = append(secrets, agent, alice)
	_, r1 := e.exchange(url.Values{"subject_token": {agent}})
	_, r2 := e.exchange(url.Values{"subject_token": {agent}, "audience": {"https://api.demo.local"}})
	_, r3 := e.post("/v1/credentials", agent, map[string]any{"target": "demo-api", "role": "read", "on_behalf_of": alice})
	e.post("/v1/credentials", "bogus."+agent, map[string]any{"target": "demo-api", "role": "read"})
	secrets = append(secrets, r1["access_token"].(string), r2["access_token"].(string), r3["credential"].(map[string]any)["access_token"].(string))
	e.app.Audit.Close()
	raw, err := os.ReadFile(filepath.Join(e.dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		sig := s[strings.LastIndex(s, ".")+1:]
		for where, text := range map[string]string{"audit": string(raw), "log": e.logBuf.String()} {
			if strings.Contains(text, s) || strings.Contains(text, sig) {
				t.Errorf("secret %d found in %s", i, where)
			}
		}
	}
	f, _ := os.Open(filepath.Join(e.dir, "audit.jsonl"))
	defer f.Close()
	res, err := audit.Verify(f)
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	if res.Events < 8 {
		t.Fatalf("only %d events", res.Events)
	}
}

func TestDiscoveryAndHealth(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/healthz", "/readyz", "/.well-known/openid-configuration", "/.well-known/jwks.json", "/metrics"} {
		resp, err := http.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, b)
		}
		if p == "/metrics" && !strings.Contains(string(b), "stint_http_requests_total") {
			t.Fatalf("metrics lack stint_http_requests_total")
		}
	}
	resp, _ := http.Get(e.url + "/nope")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	resp, _ = http.Post(e.url+"/v1/credentials", "application/json", strings.NewReader(strings.Repeat("x", 100<<10)))
	if resp.StatusCode != 400 && resp.StatusCode != 401 {
		t.Fatalf("oversized body: %d", resp.StatusCode)
	}
	_ = fmt.Sprint()
}

// A delegated token (sub=human, act=workload) presented as actor_token must
// not turn the workload into the human (RFC 8693 roles swapped), and a
// principal cannot act for itself.
func TestExchangeRefusesDelegatedOrSelfActor(t *testing.T) {
	e := newEnv(t)
	agent := e.workload("agents", "support-bot")
	jwtType := "urn:ietf:params:oauth:token-type:jwt"
	code, res := e.exchange(url.Values{"subject_token": {e.human("alice", "stint-admins")}, "actor_token": {agent}, "actor_token_type": {jwtType}})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	delegated := res["access_token"].(string)
	code, res = e.exchange(url.Values{"subject_token": {agent}, "actor_token": {delegated}, "actor_token_type": {jwtType}})
	if code != 400 || !strings.Contains(res["error_description"].(string), "own token") {
		t.Fatalf("delegated actor token: %d %v", code, res)
	}
	code, res = e.exchange(url.Values{"subject_token": {agent}, "actor_token": {agent}, "actor_token_type": {jwtType}})
	if code != 400 {
		t.Fatalf("self as actor: %d %v", code, res)
	}
}
