package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/agent"
	"github.com/stint-dev/stint/internal/testenv"
)

// runningAgent is a `stint agent` process.
type runningAgent struct {
	t      *testing.T
	cmd    *exec.Cmd
	health string
	mu     sync.Mutex
	log    *bytes.Buffer
	done   chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAgent writes agent.yaml (with {{health}} and {{dir}} replaced) and
// runs `stint agent --config` on it.
func startAgent(t *testing.T, s *server, tokenFile, dir, yaml string) *runningAgent {
	t.Helper()
	health := freeAddr(t)
	text := strings.NewReplacer("{{health}}", health, "{{dir}}", dir, "{{token}}", tokenFile, "{{server}}", s.addr).Replace(yaml)
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &runningAgent{t: t, health: "http://" + health + "/healthz", log: &bytes.Buffer{}, done: make(chan error, 1)}
	a.cmd = exec.Command(stintBin, "agent", "--config", cfg)
	a.cmd.Stdout = lockedWriter{&a.mu, a.log}
	a.cmd.Stderr = lockedWriter{&a.mu, a.log}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		if t.Failed() {
			a.mu.Lock()
			t.Logf("agent log:\n%s", a.log.String())
			a.mu.Unlock()
		}
	})
	return a
}

// stop sends SIGTERM and waits for a clean exit.
func (a *runningAgent) stop() {
	a.t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			a.t.Fatalf("agent exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		a.t.Fatal("agent did not stop")
	}
}

// crash kills the agent without letting it clean up.
func (a *runningAgent) crash() {
	a.cmd.Process.Kill()
	<-a.done
}

func (a *runningAgent) healthz() (int, agent.HealthStatus) {
	a.t.Helper()
	resp, err := http.Get(a.health)
	if err != nil {
		return 0, agent.HealthStatus{}
	}
	defer resp.Body.Close()
	var hs agent.HealthStatus
	json.NewDecoder(resp.Body).Decode(&hs)
	return resp.StatusCode, hs
}

func stateLeases(t *testing.T, path string) []string {
	t.Helper()
	st, err := agent.ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range st.Leases {
		ids = append(ids, l.LeaseID)
	}
	return ids
}

func loginWith(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, strings.TrimSpace(dsn))
	if err != nil {
		t.Fatalf("login with the written credential: %v", err)
	}
	defer c.Close(ctx)
	var u string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// The agent writes a PostgreSQL DSN through a template (0600), a reader
// logs in with it; the lease is renewed while it lives; when the lease is
// revoked behind the agent's back it fetches a new one and the file
// changes; on shutdown the role is dropped.
func TestAgent_PostgresFileSink_RenewReissueAndRevokeOnShutdown(t *testing.T) {
	pgURL := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	s := startServer(t, pgURL)
	dir := t.TempDir()
	tok := s.tokenFile("agents", "bot")
	a := startAgent(t, s, tok, dir, `
server: {{server}}
identity: { source: file, token_file: {{token}} }
state_file: {{dir}}/state.json
health: { listen: "{{health}}", unhealthy_within: 1s }
credentials:
  - name: orders
    target: stagent-pg
    role: short
    sinks:
      - { type: file, path: "{{dir}}/dsn", template: "{{ .Credential.dsn }}" }
      - { type: env-file, path: "{{dir}}/db.env", mode: "0640" }
`)
	dsnPath := filepath.Join(dir, "dsn")
	dsn1 := waitFile(t, dsnPath, 20*time.Second, func(s string) bool { return s != "" })
	if fi, _ := os.Stat(dsnPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("dsn file mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "db.env")); fi.Mode().Perm() != 0o640 {
		t.Fatalf("env file mode %v, want 0640", fi.Mode().Perm())
	}
	user1 := loginWith(t, dsn1)
	env := kv(readFile(t, filepath.Join(dir, "db.env")))
	if env["PGUSER"] != "'"+user1+"'" {
		t.Fatalf("env file PGUSER = %s, want %s", env["PGUSER"], user1)
	}
	code, hs := a.healthz()
	if code != http.StatusOK || len(hs.Credentials) != 1 {
		t.Fatalf("health %d %+v", code, hs)
	}
	lease1 := hs.Credentials[0].LeaseID

	// TTL is 3 s: after 4.5 s the role only works if renewed.
	time.Sleep(4500 * time.Millisecond)
	if got := loginWith(t, dsn1); got != user1 {
		t.Fatalf("logged in as %s", got)
	}
	if n := s.auditEvents("credential.renew", lease1); n < 1 {
		t.Fatalf("lease renewed %d times", n)
	}

	// Revoke behind the agent's back: its next renewal is refused, it
	// fetches a new credential and rewrites the file.
	if out, err := s.stint(tok, "leases", "revoke", lease1).CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v: %s", err, out)
	}
	dsn2 := waitFile(t, dsnPath, 10*time.Second, func(s string) bool { return s != "" && s != dsn1 })
	user2 := loginWith(t, dsn2)
	if user2 == user1 || roleExists(t, pgURL, user1) {
		t.Fatalf("old role %s should be gone, new %s", user1, user2)
	}

	a.stop()
	if roleExists(t, pgURL, user2) {
		t.Fatalf("role %s survived the agent's shutdown", user2)
	}
	if ids := stateLeases(t, filepath.Join(dir, "state.json")); len(ids) != 0 {
		t.Fatalf("state file still holds %v after shutdown", ids)
	}
}

// A jwt credential cannot be renewed, so the agent fetches a new one at
// 85 % of its life and runs the change command. When the server dies the
// agent keeps the valid credential and stays healthy until it is about to
// expire; only then does the health endpoint turn 503.
func TestAgent_JWTRefetch_CommandRuns_HealthUnhealthyOnlyNearExpiry(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	a := startAgent(t, s, s.tokenFile("agents", "bot"), dir, `
server: {{server}}
identity: { source: file, token_file: {{token}} }
health: { listen: "{{health}}", unhealthy_within: 1500ms }
retry: { initial: 200ms, max: 500ms }
credentials:
  - name: api
    target: demo-api
    role: read
    ttl: 4s
    sinks:
      - { type: file, path: "{{dir}}/token", template: "{{ .Credential.access_token }}" }
    command: [sh, -c, "echo $STINT_CREDENTIAL >> {{dir}}/changes"]
`)
	tokPath := filepath.Join(dir, "token")
	tok1 := waitFile(t, tokPath, 20*time.Second, func(s string) bool { return s != "" })
	tok2 := waitFile(t, tokPath, 10*time.Second, func(s string) bool { return s != "" && s != tok1 })
	waitFile(t, filepath.Join(dir, "changes"), 5*time.Second, func(s string) bool { return s == "api\napi\n" })

	s.kill()
	killed := time.Now()
	if code, hs := a.healthz(); code != http.StatusOK {
		t.Fatalf("health %d %+v right after the server died; the credential is still good", code, hs)
	}
	var unhealthyAt time.Time
	for time.Since(killed) < 10*time.Second {
		code, hs := a.healthz()
		if code == http.StatusServiceUnavailable {
			if hs.Credentials[0].Status != "expiring" {
				t.Fatalf("status %+v", hs)
			}
			unhealthyAt = time.Now()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if unhealthyAt.IsZero() {
		t.Fatal("never reported unhealthy although the credential expired")
	}
	// tok2 was fresh (4 s) when the server died; the agent must not give
	// up on it early (1.5 s threshold → ~2.5 s of health).
	if d := unhealthyAt.Sub(killed); d < time.Second {
		t.Fatalf("unhealthy %s after the server died: too early", d)
	}
	if got := readFile(t, tokPath); got != tok2 {
		t.Fatal("the agent dropped the valid credential while the server was away")
	}
	a.stop()
}

// A restart neither leaks nor duplicates: with on_start: revoke the
// crashed run's lease is revoked; with adopt it is kept.
func TestAgent_RestartRevokesOrAdoptsStateFileLeases(t *testing.T) {
	s := startServer(t, "")
	tok := s.tokenFile("agents", "bot")
	conf := func(onStart string) string {
		return `
server: {{server}}
identity: { source: file, token_file: {{token}} }
state_file: {{dir}}/state.json
on_start: ` + onStart + `
health: { listen: "{{health}}" }
credentials:
  - { name: api, target: demo-api, role: read, ttl: 1m, sinks: [ { type: file, path: "{{dir}}/token", template: "{{ .LeaseID }}" } ] }
`
	}
	for _, mode := range []string{"revoke", "adopt"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			leasePath := filepath.Join(dir, "token")
			a := startAgent(t, s, tok, dir, conf(mode))
			first := waitFile(t, leasePath, 20*time.Second, func(s string) bool { return s != "" })
			if ids := stateLeases(t, filepath.Join(dir, "state.json")); len(ids) != 1 || ids[0] != first {
				t.Fatalf("state %v, want [%s]", ids, first)
			}
			a.crash()

			b := startAgent(t, s, tok, dir, conf(mode))
			var second string
			deadline := time.Now().Add(20 * time.Second)
			for {
				if code, hs := b.healthz(); code == http.StatusOK {
					second = hs.Credentials[0].LeaseID
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("restarted agent never became healthy")
				}
				time.Sleep(50 * time.Millisecond)
			}
			switch mode {
			case "revoke":
				if second == first || s.auditEvents("credential.revoke", first) != 1 {
					t.Fatalf("lease %s of the crashed run was not revoked (now %s)", first, second)
				}
				waitFile(t, leasePath, 5*time.Second, func(s string) bool { return s == second })
			case "adopt":
				if second != first || s.auditEvents("credential.revoke", first) != 0 {
					t.Fatalf("lease %s was not adopted (now %s)", first, second)
				}
			}
			b.stop()
			if s.auditEvents("credential.revoke", second) != 1 {
				t.Fatalf("lease %s not revoked at shutdown", second)
			}
		})
	}
}

// examples/dbcred, a Go program using only the public client, gets a
// PostgreSQL credential, logs in with it, and revokes it on the way out.
func TestExampleDBCred_GetsCredentialLogsInAndRevokes(t *testing.T) {
	pgURL := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	s := startServer(t, pgURL)
	cmd := exec.Command(exampleBin, "-addr", s.addr, "-token-file", s.tokenFile("agents", "bot"), "-target", "stagent-pg", "-role", "short")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || f[0] != "connected" || f[1] != "as" {
		t.Fatalf("output %q", out)
	}
	if roleExists(t, pgURL, f[2]) {
		t.Fatalf("role %s left behind", f[2])
	}
}
