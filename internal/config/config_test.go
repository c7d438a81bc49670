package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
server:
  listen: 127.0.0.1:8420
  store: sqlite:///tmp/stint-test/stint.db
identity_providers:
  - name: prod-cluster
    type: kubernetes
    issuer: https://kubernetes.default.svc
    attributes: { cluster: prod-eu-1 }
targets:
  - name: api
    type: jwt
    roles:
      read: { audience: https://api.example.com, scopes: [read], default_ttl: 5m }
policies:
  - name: r
    grants: [api/read]
    when: identity.namespace == "agents"
    max_ttl: 10m
audit:
  sinks:
    - { type: file, path: /tmp/stint-test/audit.jsonl }
`

func TestParseGoodConfig(t *testing.T) {
	cfg, err := Parse("stint.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Targets[0].Roles["read"].DefaultTTL.D().String(); got != "5m0s" {
		t.Errorf("default_ttl = %s", got)
	}
	if cfg.Server.IssuerURL != "http://127.0.0.1:8420" {
		t.Errorf("issuer_url default = %q", cfg.Server.IssuerURL)
	}
	if got := cfg.Server.VerifiedTokenCache.D(); got != 30*time.Second {
		t.Errorf("verified_token_cache default = %s", got)
	}
	off, err := Parse("off.yaml", []byte("server: {verified_token_cache: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.SetDefaults(); off.Server.VerifiedTokenCache.D() != 0 {
		t.Errorf("verified_token_cache: 0s became %s", off.Server.VerifiedTokenCache.D())
	}
	if cfg.Server.KEKFile != "/tmp/stint-test/kek" {
		t.Errorf("kek_file default = %q", cfg.Server.KEKFile)
	}
	if !*cfg.Audit.Sinks[0].Required || !*cfg.Audit.Sinks[0].Fsync {
		t.Error("file sink should default to required and fsync")
	}
	if cfg.Line("policies[0].when") != 18 {
		t.Errorf("line of policies[0].when = %d, want 18", cfg.Line("policies[0].when"))
	}
}

// Every problem is reported at once, each with file:line.
func TestLoadReportsEveryProblemWithLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stint.yaml")
	bad := `server:
  listen: 127.0.0.1:8420
  lisen: typo
  store: sqlite:///tmp/x.db
identity_providers:
  - name: k
    type: kubernetes
    issuer: https://k
    jwks_file: /nonexistent/jwks.json
targets:
  - name: api
    type: jwt
    roles:
      read: { audience: a, default_ttl: 5 minutes }
policies:
  - name: p
    grants: [not-a-grant]
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		path + `:3: unknown key "lisen" in server`,
		path + `:14: bad duration "5 minutes"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q", want)
		}
	}
	// Decode errors stop before validation, so fix them and see the rest.
	fixed := strings.Replace(strings.Replace(bad, "  lisen: typo\n", "", 1), "5 minutes", "5m", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil {
		t.Fatal("want errors")
	}
	msg = err.Error()
	for _, want := range []string{
		path + `:8: identity_providers[0].jwks_file: cannot read /nonexistent/jwks.json`,
		path + `:16: policies[0].grants[0]: want target/role`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown target key", "targets:\n  - name: a\n    type: jwt\n    rolez: {}\n", `unknown key "rolez"`},
		{"duplicate provider", "identity_providers:\n  - {name: a, type: oidc, issuer: https://x}\n  - {name: a, type: oidc, issuer: https://y}\n", "duplicate name"},
		{"jwt role without audience", "targets:\n  - name: a\n    type: jwt\n    roles: {r: {}}\n", "audience: required"},
		{"duplicate audience", "targets:\n  - name: a\n    type: jwt\n    roles: {r: {audience: x}, s: {audience: x}}\n", "already used"},
		{"sql without dsn", "targets:\n  - name: db\n    type: postgres\n    roles: {r: {creation: x}}\n", "dsn: required"},
		{"dsn on jwt", "targets:\n  - name: a\n    type: jwt\n    dsn: postgres://x\n    roles: {r: {audience: x}}\n", "not used by a jwt target"},
		{"reserved target name", "targets:\n  - name: stint\n    type: jwt\n    roles: {r: {audience: x}}\n", "reserved"},
		{"http issuer off loopback", "server: {issuer_url: http://stint.example.com}\n", "plain http"},
		{"bad store", "server: {store: mysql://x}\n", "server.store"},
		{"bad algorithm", "server: {signing_algorithm: HS256}\n", "signing_algorithm"},
		{"policy without grants", "policies:\n  - name: p\n    when: 'true'\n", "at least one"},
		{"file sink without path", "audit:\n  sinks: [{type: file}]\n", "path: required"},
		{"list where mapping", "server: [1, 2]\n", "want a mapping"},
		{"negative duration", "server: {session_ttl: -5m}\n", "negative"},
		{"token cache too long", "server: {verified_token_cache: 1h}\n", "server.verified_token_cache"},
		{"reserved provider name", "identity_providers:\n  - {name: unix-socket, type: oidc, issuer: https://x}\n", "reserved"},
		{"role audience is the issuer", "server: {issuer_url: https://stint.example}\ntargets:\n  - name: aws\n    type: aws-sts\n    roles: {r: {kind: web_identity, role_arn: 'arn:aws:iam::123456789012:role/x', audience: https://stint.example}}\n", "must differ from server.issuer_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "c.yaml:") {
				t.Errorf("error lacks file:line: %v", err)
			}
		})
	}
}

func TestLeaseRetention(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       time.Duration
		wantErr    string
	}{
		{"default is 30 days", "", 720 * time.Hour, ""},
		{"0s keeps forever", "leases: {retention: 0s}\n", 0, ""},
		{"1h is the least", "leases: {retention: 1h}\n", time.Hour, ""},
		{"longer", "leases: {retention: 2160h}\n", 2160 * time.Hour, ""},
		{"under 1h", "leases: {retention: 59m}\n", 0, "leases.retention: must be 0 (keep forever) or at least 1h"},
		{"negative", "leases: {retention: -1h}\n", 0, "is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("stint.yaml", []byte(good+tc.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "stint.yaml:") {
					t.Fatalf("got %v, want %q with file:line", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Leases.Retention.D(); got != tc.want {
				t.Fatalf("retention = %s, want %s", got, tc.want)
			}
		})
	}
	// YAML cannot say a negative duration, but a config built in code can.
	cfg, err := Parse("stint.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	neg := Duration(-time.Hour)
	cfg.Leases.Retention = &neg
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "leases.retention") {
		t.Fatalf("negative retention: Validate = %v, want a leases.retention error", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("server: {listen: x}\n"))
	f.Add([]byte("targets: [{name: a, roles: {r: {default_ttl: 1h}}}]"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		cfg.SetDefaults()
		_ = cfg.Validate()
	})
}
