package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/config"
)

const proxyKey = "sk-live-e2e-5b1f0c7d9a3e4f60"

const proxyConfig = `
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
    url: {{upstream}}/base
    auth: { header: Authorization, format: "Bearer {{.Key}}" }
    policy_headers: [X-Team]
    limits:
      per_principal: { rate_per_second: 0.001, burst: 4 }
    roles:
      chat: { methods: [POST], paths: [/v1/chat/completions, /v1/responses] }
      models: { methods: [GET], paths: ["/v1/models/*"] }
policies:
  - name: support-bot-llm
    grants: [llm/chat]
    when: >
      identity.service_account == "support-bot" && request.method == "POST" &&
      has(request.body.model) && request.body.model in ["gpt-4.1-mini"]
  - name: agents-list-models
    grants: [llm/models]
    when: identity.namespace == "agents" && request.headers["x-team"] == "support"
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

// newProxyEnv runs stint with an http target in front of upstream, its
// static key set the way `stint target set-key` sets it.
func newProxyEnv(t testing.TB, upstream string) *env {
	return newProxyEnvWith(t, proxyConfig, upstream)
}

func newProxyEnvWith(t testing.TB, cfgText, upstream string) *env {
	t.Helper()
	return newEnvWith(t, strings.ReplaceAll(cfgText, "{{upstream}}", upstream), func(cfg *config.Config) {
		if err := app.SetUpstreamKey(context.Background(), cfg, "llm", []byte(proxyKey+"\n")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestProxyEndToEnd(t *testing.T) {
	var hits atomic.Int64
	var sawAgentToken atomic.Bool
	var agent string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		for _, v := range r.Header {
			if strings.Contains(strings.Join(v, ","), agent) {
				sawAgentToken.Store(true)
			}
		}
		if r.Header.Get("Authorization") != "Bearer "+proxyKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "body": string(body)})
	}))
	defer up.Close()
	e := newProxyEnv(t, up.URL)
	agent = e.workload("agents", "support-bot")
	intern := e.workload("agents", "intern-bot")

	var responses strings.Builder
	call := func(method, path, token, body string, hdr ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		responses.Write(raw)
		for k, v := range resp.Header {
			responses.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}

	body := `{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"where is my order?"}]}`
	code, m := call("POST", "/proxy/llm/v1/chat/completions", agent, body)
	if code != 200 || m["path"] != "/base/v1/chat/completions" || m["body"] != body {
		t.Fatalf("allowed call: %d %v", code, m)
	}
	denials := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            int
	}{
		{"model not in the list", "POST", "/proxy/llm/v1/chat/completions", agent, `{"model":"gpt-5-pro"}`, nil, 403},
		{"another workload", "POST", "/proxy/llm/v1/chat/completions", intern, body, nil, 403},
		{"method of no role", "PUT", "/proxy/llm/v1/chat/completions", agent, body, nil, 403},
		{"path of no role", "POST", "/proxy/llm/v1/files", agent, body, nil, 403},
		{"header policy", "GET", "/proxy/llm/v1/models/gpt-4.1-mini", agent, "", []string{"X-Team", "sales"}, 403},
		{"unconfigured target", "GET", "/proxy/api.openai.com/v1/models/x", agent, "", nil, 404},
		{"no identity", "POST", "/proxy/llm/v1/chat/completions", "not-a-token", body, nil, 401},
	}
	for _, d := range denials {
		if code, m := call(d.method, d.path, d.token, d.body, d.hdr...); code != d.want || m["error"] == nil {
			t.Errorf("%s: %d %v, want %d with a JSON error", d.name, code, m, d.want)
		}
	}
	if code, _ := call("GET", "/proxy/llm/v1/models/gpt-4.1-mini", agent, "", "X-Team", "support"); code != 200 {
		t.Errorf("header-allowed models call: %d", code)
	}
	if hits.Load() != 2 {
		t.Errorf("upstream hits %d, want 2 (denials must not reach it)", hits.Load())
	}
	// Burst 4 at a negligible rate: two more calls pass, the next is limited.
	call("POST", "/proxy/llm/v1/chat/completions", agent, body)
	call("POST", "/proxy/llm/v1/chat/completions", agent, body)
	if code, m := call("POST", "/proxy/llm/v1/chat/completions", agent, body); code != 429 || m["error"] != "rate_limited" {
		t.Errorf("over the limit: %d %v", code, m)
	}
	// An http target's credential is never handed out.
	if code, m := e.post("/v1/credentials", agent, map[string]any{"target": "llm", "role": "chat"}); code < 400 || code >= 500 || strings.Contains(responses.String()+toJSON(m), proxyKey) {
		t.Errorf("POST /v1/credentials for an http target: %d %v", code, m)
	}
	if sawAgentToken.Load() {
		t.Error("the agent's token reached the upstream")
	}

	e.app.Proxy.Close()
	e.app.Audit.Close()
	raw, err := os.ReadFile(filepath.Join(e.dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"audit": string(raw), "log": e.logBuf.String(), "responses": responses.String()} {
		if strings.Contains(text, proxyKey) {
			t.Errorf("the upstream key appears in the %s", where)
		}
		if strings.Contains(text, agent) {
			t.Errorf("the agent's token appears in the %s", where)
		}
		if where != "responses" && strings.Contains(text, "where is my order") {
			t.Errorf("a request body appears in the %s", where)
		}
	}
	uses, denies, limited := 0, 0, 0
	readAudit(t, e.dir, func(ev audit.Event) {
		switch {
		case ev.Type == audit.CredentialUse && ev.Outcome == audit.OutcomeSuccess:
			uses++
			d := ev.Details
			if ev.Target != "llm" || ev.Principal == nil || ev.Principal.Subject == "" || d["status"] != float64(200) ||
				d["bytes_in"] == nil || d["bytes_out"] == nil || d["latency_ms"] == nil || d["method"] == nil || d["upstream"] == nil {
				t.Errorf("credential.use lacks fields: %+v", ev)
			}
		case ev.Type == audit.CredentialUse && ev.Details["status"] == float64(429):
			limited++
		case ev.Type == audit.PolicyDeny:
			denies++
		}
	})
	if uses != 4 || limited != 1 || denies < 6 {
		t.Errorf("audit: %d uses (want 4), %d limited (want 1), %d denials (want ≥ 6)", uses, limited, denies)
	}
	f, _ := os.Open(filepath.Join(e.dir, "audit.jsonl"))
	defer f.Close()
	if _, err := audit.Verify(f); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
