package config

import (
	"strings"
	"testing"
)

func TestValidateHTTPTargets(t *testing.T) {
	base := "server: {store: sqlite:///tmp/x.db}\ntargets:\n  - name: llm\n    type: http\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"valid", "    url: https://api.example.com\n    roles: {chat: {methods: [POST], paths: [/v1/chat, /v1/models/*]}}\n", ""},
		{"plain http off loopback", "    url: http://api.example.com\n    roles: {chat: {methods: [POST], paths: [/v1]}}\n", "want an https URL"},
		{"no methods", "    url: https://a.example\n    roles: {chat: {paths: [/v1]}}\n", "at least one method"},
		{"bad pattern", "    url: https://a.example\n    roles: {chat: {methods: [GET], paths: [/v1/*/x]}}\n", "only allowed as the last segment"},
		{"dot segment", "    url: https://a.example\n    roles: {chat: {methods: [GET], paths: [/v1/../x]}}\n", "no . or .."},
		{"format without key", "    url: https://a.example\n    auth: {format: Bearer}\n    roles: {chat: {methods: [GET], paths: [/v1]}}\n", "exactly once"},
		{"oauth2 needs a secret", "    url: https://a.example\n    credential: oauth2\n    oauth2: {token_url: https://t.example/token, client_id: c}\n    roles: {chat: {methods: [GET], paths: [/v1]}}\n", "exactly one of client_secret_file"},
		{"jwt needs audience", "    url: https://a.example\n    credential: jwt\n    roles: {chat: {methods: [GET], paths: [/v1]}}\n", "required with credential: jwt"},
		{"cookie to policy", "    url: https://a.example\n    policy_headers: [Cookie]\n    roles: {chat: {methods: [GET], paths: [/v1]}}\n", "cannot be shown to policy"},
		{"unknown key", "    url: https://a.example\n    urll: x\n    roles: {chat: {methods: [GET], paths: [/v1]}}\n", "unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("test.yaml", []byte(base+c.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want %q, got %v", c.want, err)
			}
		})
	}
	cfg, _ := Parse("t", []byte("server: {store: sqlite:///tmp/x.db}\ntargets:\n  - name: api\n    type: jwt\n    url: https://a.example\n    roles: {r: {audience: x, methods: [GET]}}\n"))
	cfg.SetDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not used by a jwt target") || !strings.Contains(err.Error(), "methods and paths are for http targets") {
		t.Errorf("http fields on a jwt target: %v", err)
	}
}
