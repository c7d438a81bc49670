package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestProxyInvalidTokensAreRateLimited: the gateway is under the same
// invalid-identity limit as the API. After auth_failures_per_minute bad
// tokens from one address, that address gets 429 for the rest of the
// minute on /proxy/ and on the API, even with a good token, and the
// upstream never sees any of it.
func TestProxyInvalidTokensAreRateLimited(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer up.Close()
	cfg := strings.Replace(proxyConfig, "  issuer_url: {{url}}\n", "  issuer_url: {{url}}\n  auth_failures_per_minute: 3\n", 1)
	e := newProxyEnvWith(t, cfg, up.URL)
	agent := e.workload("agents", "support-bot")
	body := `{"model":"gpt-4.1-mini","messages":[]}`
	post := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/proxy/llm/v1/chat/completions", agent); code != 200 {
		t.Fatalf("a good token before any failure: %d", code)
	}
	for i := range 3 {
		if code := post("/proxy/llm/v1/chat/completions", "not-a-token"); code != 401 {
			t.Fatalf("bad token %d: %d, want 401", i+1, code)
		}
	}
	if code := post("/proxy/llm/v1/chat/completions", "not-a-token"); code != 429 {
		t.Fatalf("bad token past the limit: %d, want 429", code)
	}
	if code := post("/proxy/llm/v1/chat/completions", agent); code != 429 {
		t.Fatalf("good token from the blocked address: %d, want 429", code)
	}
	if code := post("/v1/credentials", agent); code != 429 {
		t.Fatalf("API from the blocked address: %d, want 429", code)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want only the first", n)
	}
}
