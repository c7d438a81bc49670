package agent

import (
	"testing"
)

// FuzzPeekClaims: identity tokens come from the platform or the user;
// parsing must never panic.
func FuzzPeekClaims(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := PeekClaims(tok)
		if err == nil && c.Other == nil {
			t.Fatal("nil Other on success")
		}
	})
}

// FuzzParseConfig: agent.yaml is operator input; strict decoding and
// validation must never panic and must not accept a world-readable sink.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("credentials: [ { target: db, role: ro, sinks: [ { type: file, path: /x } ] } ]\n"))
	f.Add([]byte("credentials:\n  - target: db\n    role: ro\n    sinks: [ { type: file, path: /x, mode: \"0644\" } ]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("agent.yaml", data)
		if err != nil {
			return
		}
		for _, c := range cfg.Credentials {
			for _, s := range c.Sinks {
				m, err := parseMode(s.Mode)
				if err != nil || m&0o007 != 0 {
					t.Fatalf("accepted mode %q", s.Mode)
				}
			}
		}
	})
}

// FuzzParseSpec: --cred values are user input.
func FuzzParseSpec(f *testing.F) {
	f.Add("db/ro:name")
	f.Add("db/ro")
	f.Add("::/")
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		if sp.Target == "" || sp.Role == "" || sp.Name == "" {
			t.Fatalf("accepted %q as %+v", s, sp)
		}
	})
}
