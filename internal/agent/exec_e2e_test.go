package agent_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/testenv"
)

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("not an exit: %v", err)
	}
	return ee.ExitCode()
}

// The child logs in to the real PostgreSQL four times over ~6 s with a
// credential whose TTL is 3 s: the later logins work only because stint
// exec renewed the lease (VALID UNTIL moved). After the child exits, the
// role is gone and the child's exit code is stint's.
func TestExec_ChildLogsInToPostgres_RenewedThenRevokedOnExit(t *testing.T) {
	pgURL := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed (Debian: postgresql-client)")
	}
	s := startServer(t, pgURL)
	out := t.TempDir()
	script := `echo "$PGUSER" > "$OUT/user"; echo "$STINT_STAGENT_PG_LEASE_ID" > "$OUT/lease"
i=0; while [ $i -lt 4 ]; do psql -X -tAc 'select current_user' >> "$OUT/logins" || exit 3; sleep 2; i=$((i+1)); done
exit 7`
	cmd := s.stint(s.tokenFile("agents", "bot"), "exec", "--cred", "stagent-pg/short", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "OUT="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := exitStatus(t, err); code != 7 {
		t.Fatalf("exit %d, want the child's 7; stderr:\n%s", code, stderr.String())
	}
	user := strings.TrimSpace(readFile(t, filepath.Join(out, "user")))
	lease := strings.TrimSpace(readFile(t, filepath.Join(out, "lease")))
	logins := strings.Fields(readFile(t, filepath.Join(out, "logins")))
	if len(logins) != 4 || user == "" {
		t.Fatalf("logins %q as %q; stderr:\n%s", logins, user, stderr.String())
	}
	for _, l := range logins {
		if l != user {
			t.Fatalf("logged in as %q, want %q", l, user)
		}
	}
	if n := s.auditEvents("credential.renew", lease); n < 2 {
		t.Fatalf("lease %s renewed %d times, want ≥ 2", lease, n)
	}
	if roleExists(t, pgURL, user) {
		t.Fatalf("role %s still exists after the child exited", user)
	}
}

// SIGTERM to stint exec is forwarded to the child, and the lease is
// revoked (the role dropped) before stint exits with the child's code.
func TestExec_SIGTERMForwardedAndRevokes(t *testing.T) {
	pgURL := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	s := startServer(t, pgURL)
	out := t.TempDir()
	script := `trap 'echo got-term > "$OUT/term"; exit 42' TERM
echo "$PGUSER" > "$OUT/user.tmp"; mv "$OUT/user.tmp" "$OUT/user"
while true; do sleep 0.1; done`
	cmd := s.stint(s.tokenFile("agents", "bot"), "exec", "--cred", "stagent-pg/short", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "OUT="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	user := strings.TrimSpace(waitFile(t, filepath.Join(out, "user"), 20*time.Second, func(s string) bool { return s != "" }))
	if !roleExists(t, pgURL, user) {
		t.Fatalf("role %s does not exist while the child runs", user)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := exitStatus(t, err); code != 42 {
		t.Fatalf("exit %d, want 42; stderr:\n%s", code, stderr.String())
	}
	if strings.TrimSpace(readFile(t, filepath.Join(out, "term"))) != "got-term" {
		t.Fatal("child did not receive SIGTERM")
	}
	if roleExists(t, pgURL, user) {
		t.Fatalf("role %s still exists after SIGTERM", user)
	}
}

// A jwt credential lands in ACCESS_TOKEN and STINT_TOKEN_<NAME>; --env adds
// a chosen name; the exit code passes through.
func TestExec_JWTEnvironmentAndExitCode(t *testing.T) {
	s := startServer(t, "")
	out := t.TempDir()
	script := `[ -n "$ACCESS_TOKEN" ] && [ "$STINT_TOKEN_API" = "$ACCESS_TOKEN" ] && [ "$STINT_API_ACCESS_TOKEN" = "$ACCESS_TOKEN" ] || exit 9
echo "$MY_SCOPE" > "$OUT/scope"; echo "$STINT_API_LEASE_ID" > "$OUT/lease"; exit 5`
	cmd := s.stint(s.tokenFile("agents", "bot"), "exec", "--cred", "demo-api/read:api", "--env", "MY_SCOPE=api.scope", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "OUT="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if code := exitStatus(t, cmd.Run()); code != 5 {
		t.Fatalf("exit %d, want 5; stderr:\n%s", code, stderr.String())
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(out, "scope"))); got != "orders:read" {
		t.Fatalf("MY_SCOPE = %q", got)
	}
	lease := strings.TrimSpace(readFile(t, filepath.Join(out, "lease")))
	if n := s.auditEvents("credential.revoke", lease); n != 1 {
		t.Fatalf("lease %s: %d revoke events, want 1", lease, n)
	}
}

// Bad input: each case fails with a clear message and a non-zero exit, and
// the child — which would create a marker file — never starts.
func TestExec_BadInputNeverStartsChild(t *testing.T) {
	s := startServer(t, "")
	good := s.tokenFile("agents", "bot")
	cases := []struct {
		name  string
		token string
		addr  string
		creds []string
		want  string
	}{
		{"unknown target", good, "", []string{"nope/read"}, "cannot get nope/read"},
		{"denied grant", s.tokenFile("other", "bot"), "", []string{"demo-api/read"}, "cannot get demo-api/read"},
		{"unreachable server", good, "http://127.0.0.1:1", []string{"demo-api/read"}, "cannot reach"},
		{"second of two fails", good, "", []string{"demo-api/read", "nope/read"}, "cannot get nope/read"},
		{"malformed spec", good, "", []string{"demo-api"}, "want TARGET/ROLE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			args := []string{"exec"}
			for _, cr := range c.creds {
				args = append(args, "--cred", cr)
			}
			args = append(args, "--", "touch", marker)
			cmd := s.stint(c.token, args...)
			if c.addr != "" {
				cmd.Env = append(cmd.Env, "STINT_ADDR="+c.addr)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exitStatus(t, err) == 0 {
				t.Fatal("exit 0")
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("stderr %q, want it to mention %q", stderr.String(), c.want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the child was started")
			}
		})
	}
	// The credential fetched before the second one failed was revoked.
	if issued, revoked := s.auditEvents("credential.issue", ""), s.auditEvents("credential.revoke", ""); issued != revoked || issued == 0 {
		t.Fatalf("%d issued, %d revoked: a lease leaked", issued, revoked)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
