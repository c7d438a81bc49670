package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/devcluster"
)

// stintBin is the stint binary built once for the end-to-end tests.
var stintBin, exampleBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stint-agent-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stintBin = filepath.Join(dir, "stint")
	exampleBin = filepath.Join(dir, "dbcred")
	for out, pkg := range map[string]string{stintBin: "../../cmd/stint", exampleBin: "../../examples/dbcred"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a stint server running as a real process.
type server struct {
	t    *testing.T
	dir  string
	addr string
	proc *exec.Cmd
}

// kill stops the server abruptly (SIGKILL), as a crash or partition would.
func (s *server) kill() {
	s.proc.Process.Kill()
}

const serverConfig = `
server:
  listen: {{addr}}
  issuer_url: http://{{addr}}
  store: sqlite://{{dir}}/stint.db
identity_providers:
  - name: dev-cluster
    type: kubernetes
    issuer: https://dev-cluster.stint.local
    jwks_file: {{dir}}/dev-cluster-jwks.json
    audiences: [stint]
targets:
  - name: demo-api
    type: jwt
    roles:
      read:
        audience: https://api.demo.local
        scopes: [orders:read]
        default_ttl: 5m
{{pgtarget}}
policies:
  - name: agents
    grants: [demo-api/read, stagent-pg/short]
    max_ttl: 2m
    when: identity.provider == "dev-cluster" && identity.namespace == "agents"
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

// pgTarget is a postgres target whose roles live a few seconds, so tests
// see renewals quickly.
const pgTarget = `
  - name: stagent-pg
    type: postgres
    dsn: {{pgurl}}
    roles:
      short:
        creation: |
          CREATE ROLE "{{.Name}}" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}';
        default_ttl: 3s
`

// startServer runs `stint server --config` with a jwt target and, when
// pgURL is set, a postgres target.
func startServer(t *testing.T, pgURL string) *server {
	t.Helper()
	dir := t.TempDir()
	if err := devcluster.Init(dir); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pg := ""
	if pgURL != "" {
		pg = strings.ReplaceAll(pgTarget, "{{pgurl}}", pgURL)
	}
	text := strings.NewReplacer("{{addr}}", addr, "{{dir}}", dir, "{{pgtarget}}", pg).Replace(serverConfig)
	cfg := filepath.Join(dir, "stint.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(stintBin, "server", "--config", cfg)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	s := &server{t: t, dir: dir, addr: "http://" + addr, proc: cmd}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not become healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tokenFile mints a dev-cluster service-account token into a file.
func (s *server) tokenFile(ns, sa string) string {
	s.t.Helper()
	tok, err := devcluster.MintWorkload(s.dir, devcluster.Workload{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		s.t.Fatal(err)
	}
	p := filepath.Join(s.t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// stint returns a command running the stint binary against this server.
func (s *server) stint(tokenFile string, args ...string) *exec.Cmd {
	cmd := exec.Command(stintBin, args...)
	cmd.Env = append(os.Environ(), "STINT_ADDR="+s.addr, "STINT_IDENTITY_TOKEN_FILE="+tokenFile)
	return cmd
}

// auditEvents counts the successful events of a type (for one lease, or
// all when leaseID is "") in the server's audit file.
func (s *server) auditEvents(typ, leaseID string) int {
	s.t.Helper()
	f, err := os.Open(filepath.Join(s.dir, "audit.jsonl"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Type    string `json:"type"`
			LeaseID string `json:"lease_id"`
			Outcome string `json:"outcome"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == typ && ev.Outcome == "success" && (leaseID == "" || ev.LeaseID == leaseID) {
			n++
		}
	}
	return n
}

// roleExists asks PostgreSQL whether a role is there.
func roleExists(t *testing.T, pgURL, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// waitFile waits until path exists with content satisfying ok.
func waitFile(t *testing.T, path string, timeout time.Duration, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && ok(string(b)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %s (last: %q, %v)", path, timeout, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kv(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			m[k] = v
		}
	}
	return m
}
