package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/client"
)

func pgHeld(name, user string) Held {
	return Held{Name: name, Target: "db", Role: "ro", Lease: client.Credential{LeaseID: "l-" + name, Renewable: true, Credential: map[string]string{
		"username": user, "password": "pw'x", "host": "127.0.0.1", "port": "5432", "database": "test",
		"dsn": "postgres://" + user + ":pw@127.0.0.1:5432/test",
	}}}
}

func TestKind_FromCredentialShape(t *testing.T) {
	cases := []struct {
		name string
		c    map[string]string
		want string
	}{
		{"postgres dsn", map[string]string{"dsn": "postgres://u:p@h/db"}, KindPostgres},
		{"postgresql dsn", map[string]string{"dsn": "postgresql://u:p@h/db"}, KindPostgres},
		{"mysql url", map[string]string{"dsn": "mysql://u:p@h:3306/db"}, KindMySQL},
		{"go mysql dsn", map[string]string{"dsn": "u:p@tcp(h:3306)/db"}, KindMySQL},
		{"jwt", map[string]string{"access_token": "x", "token_type": "Bearer"}, KindJWT},
		{"aws", map[string]string{"access_key_id": "A", "secret_access_key": "S", "session_token": "T"}, KindAWS},
		{"other", map[string]string{"certificate": "PEM"}, KindGeneric},
	}
	for _, c := range cases {
		if got := Kind(c.c); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestEnv_ConventionalNamesOnlyWhenUnambiguous(t *testing.T) {
	jwtH := Held{Name: "api", Lease: client.Credential{LeaseID: "l-api", Credential: map[string]string{"access_token": "tok", "scope": "a"}}}
	cases := []struct {
		name      string
		held      []Held
		overrides []EnvOverride
		want      []string
		absent    []string
		wantErr   string
	}{
		{"one database gets PG* and DATABASE_URL", []Held{pgHeld("orders", "u1"), jwtH}, nil,
			[]string{"PGUSER=u1", "PGPASSWORD=pw'x", "DATABASE_URL=postgres://u1:pw@127.0.0.1:5432/test", "STINT_ORDERS_USERNAME=u1", "STINT_ORDERS_LEASE_ID=l-orders", "ACCESS_TOKEN=tok", "STINT_TOKEN_API=tok"}, nil, ""},
		{"two databases: only prefixed names", []Held{pgHeld("a", "u1"), pgHeld("b", "u2")}, nil,
			[]string{"STINT_A_USERNAME=u1", "STINT_B_USERNAME=u2"}, []string{"PGUSER", "DATABASE_URL"}, ""},
		{"override wins", []Held{pgHeld("orders", "u1")}, []EnvOverride{{Var: "PGUSER", Name: "orders", Field: "host"}, {Var: "DB_PASS", Name: "orders", Field: "password"}},
			[]string{"PGUSER=127.0.0.1", "DB_PASS=pw'x"}, nil, ""},
		{"override of unknown credential", []Held{pgHeld("orders", "u1")}, []EnvOverride{{Var: "X", Name: "nope", Field: "password"}}, nil, nil, "no credential named"},
		{"override of unknown field names the fields, not values", []Held{pgHeld("orders", "u1")}, []EnvOverride{{Var: "X", Name: "orders", Field: "pass"}}, nil, nil, "has database, dsn, host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Env(c.held, c.overrides)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "pw'x") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			set := map[string]bool{}
			names := map[string]bool{}
			for _, kv := range got {
				set[kv] = true
				n, _, _ := strings.Cut(kv, "=")
				names[n] = true
			}
			for _, w := range c.want {
				if !set[w] {
					t.Errorf("missing %s in %v", w, got)
				}
			}
			for _, a := range c.absent {
				if names[a] {
					t.Errorf("%s set although ambiguous", a)
				}
			}
		})
	}
}

func TestMergeEnv_LaterWins(t *testing.T) {
	got := MergeEnv([]string{"A=1", "PGUSER=old", "B=2"}, []string{"PGUSER=new", "C=3"})
	want := "A=1 PGUSER=new B=2 C=3"
	if strings.Join(got, " ") != want {
		t.Fatalf("%v", got)
	}
}

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in, want, wantErr string
	}{
		{"db/ro", "db/ro:db", ""},
		{"db/ro:orders", "db/ro:orders", ""},
		{"db", "", "want TARGET/ROLE"},
		{"db/", "", "want TARGET/ROLE"},
		{"/ro", "", "want TARGET/ROLE"},
		{"db/ro/x", "", "want TARGET/ROLE"},
		{"db/ro:", "", "empty NAME"},
	}
	for _, c := range cases {
		s, err := ParseSpec(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v", c.in, err)
			}
			continue
		}
		if err != nil || s.String() != c.want {
			t.Errorf("%q: %v %v", c.in, s, err)
		}
	}
}

func TestAt_TwoThirdsWithJitterAndBackoffCapped(t *testing.T) {
	from := time.Unix(0, 0)
	until := from.Add(90 * time.Second)
	if got := At(from, until, RenewFraction, func() float64 { return 0 }); got.Sub(from) != 60*time.Second {
		t.Fatalf("no jitter: %s", got.Sub(from))
	}
	if got := At(from, until, RenewFraction, func() float64 { return 0.999 }); got.Sub(from) < 55*time.Second || got.Sub(from) >= 60*time.Second {
		t.Fatalf("max jitter: %s", got.Sub(from))
	}
	if got := At(from, until, RefetchFraction, func() float64 { return 0 }); got.Sub(from) != 76500*time.Millisecond {
		t.Fatalf("refetch: %s", got.Sub(from))
	}
	b := Backoff{Initial: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for i := 0; i < 5; i++ {
		got = append(got, b.Next())
	}
	if got[0] != time.Second || got[1] != 2*time.Second || got[2] != 4*time.Second || got[3] != 5*time.Second || got[4] != 5*time.Second {
		t.Fatalf("backoff %v", got)
	}
}

func TestParseConfig_StrictWithFileLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key with its line", "credentials:\n  - target: db\n    role: ro\n    sinkz: []\n", []string{"agent.yaml:4: unknown key \"sinkz\""}},
		{"every problem at once", `on_start: maybe
credentials:
  - target: db
    sinks:
      - { type: file, path: /tmp/x, mode: "0644" }
      - { type: socket, path: /tmp/x }
`, []string{"agent.yaml:1: on_start", "credentials[0].role: is required", "agent.yaml:5: credentials[0].sinks[0].mode", "must not be readable by others", "agent.yaml:6: credentials[0].sinks[1].type", "also written by"}},
		{"bad template", "credentials:\n  - target: db\n    role: ro\n    sinks: [ { type: file, path: /x, template: \"{{ .Credential.password \" } ]\n", []string{"agent.yaml:4", "template"}},
		{"adopt needs a state file", "on_start: adopt\ncredentials: [ { target: db, role: ro, sinks: [ { type: env-file, path: /x } ] } ]\n", []string{"adopt needs a state_file"}},
		{"bad duration", "retry: { max: soon }\ncredentials: [ { target: db, role: ro, sinks: [ { type: env-file, path: /x } ] } ]\n", []string{"agent.yaml:1", "bad duration"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	cfg, err := ParseConfig("agent.yaml", []byte("credentials: [ { target: db, role: ro, sinks: [ { type: file, path: /x } ] } ]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Credentials[0].Name != "db" || cfg.Credentials[0].Sinks[0].Mode != "0600" || cfg.OnStart != "revoke" || cfg.Retry.Max.D() != 30*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestFileSink_TemplateAtomicModeAndUnchangedSkip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pgpass")
	sk, err := newSink(SinkConfig{Type: SinkFile, Path: p, Mode: "0640", Template: "{{ .Credential.host }}:{{ .Credential.port }}:*:{{ .Credential.username }}:{{ .Credential.password }}\n"})
	if err != nil {
		t.Fatal(err)
	}
	h := pgHeld("orders", "u1")
	changed, err := sk.write(h)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "127.0.0.1:5432:*:u1:pw'x\n" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	h.Lease.ExpiresAt = time.Now() // not in the template: no change
	if changed, err := sk.write(h); err != nil || changed {
		t.Fatalf("unchanged write: %v %v", changed, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	// A missing key fails and keeps the previous file.
	bad, _ := newSink(SinkConfig{Type: SinkFile, Path: p, Mode: "0600", Template: "{{ .Credential.pasword }}"})
	if _, err := bad.write(h); err == nil || strings.Contains(err.Error(), "pw'x") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "u1") {
		t.Fatal("previous file lost")
	}
}

func TestEnvFileSink_ShellQuoted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db.env")
	sk, err := newSink(SinkConfig{Type: SinkEnvFile, Path: p, Mode: "0600"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.write(pgHeld("orders", "u1")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `PGPASSWORD='pw'\''x'`+"\n") || !strings.Contains(string(b), "STINT_ORDERS_EXPIRES_AT=") {
		t.Fatalf("%s", b)
	}
}

func TestHealth_UnhealthyOnlyWhenMissingOrAboutToExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg, err := ParseConfig("agent.yaml", []byte("health: { unhealthy_within: 30s }\ncredentials: [ { name: a, target: db, role: ro, sinks: [ { type: env-file, path: /x } ] } ]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(cfg, DaemonOptions{Conn: &Conn{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		expires time.Duration // from now; 0: nothing held
		healthy bool
		status  string
	}{
		{"nothing fetched yet", 0, false, "missing"},
		{"fresh", 5 * time.Minute, true, "ok"},
		{"31s left", 31 * time.Second, true, "ok"},
		{"29s left", 29 * time.Second, false, "expiring"},
	}
	for _, c := range cases {
		d.slots[0].held = nil
		if c.expires > 0 {
			h := pgHeld("a", "u")
			h.Lease.ExpiresAt = now.Add(c.expires)
			d.slots[0].held = &h
		}
		hs := d.Health()
		if hs.Healthy != c.healthy || hs.Credentials[0].Status != c.status {
			t.Errorf("%s: %+v", c.name, hs)
		}
	}
}

func TestState_RoundTripAndVersion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	if st, err := ReadState(p); err != nil || len(st.Leases) != 0 {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	h := pgHeld("orders", "u1")
	if err := WriteState(p, State{Leases: []StateLease{stateLease(h)}}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", fi.Mode().Perm())
	}
	st, err := ReadState(p)
	if err != nil || len(st.Leases) != 1 || st.Leases[0].held().Lease.Credential["username"] != "u1" {
		t.Fatalf("%+v %v", st, err)
	}
	os.WriteFile(p, []byte(`{"version": 99}`), 0o600)
	if _, err := ReadState(p); err == nil {
		t.Fatal("accepted a future version")
	}
}
