package sshcert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/testenv"
)

// sshdEnv is a real sshd on a loopback port trusting one stint CA, with
// the KRL file it reads on every login.
type sshdEnv struct {
	dir, user, port, krl string
	ssh                  string
	logs                 *syncBuffer
	is                   *Issuer
	leases               *memLeases
}

// loginUser is the account the tests log in as: a dedicated one created
// for the run when root (removed afterwards), else the current user.
func loginUser(t *testing.T) string {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		return u.Username
	}
	name := "stintsshtest"
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "-M", "-d", "/", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	}
	// useradd leaves the password "!", which sshd without PAM reads as a
	// locked account and refuses even for certificates; "*" is no
	// password but not locked.
	if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	return name
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func startSSHD(t *testing.T, caKind string) *sshdEnv {
	sshdPath := testenv.Require(t, "STINT_TEST_SSHD")
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("ssh client not found: %v", err)
	}
	if os.Geteuid() == 0 {
		_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	}
	e := &sshdEnv{dir: t.TempDir(), user: loginUser(t), port: freePort(t), ssh: sshPath, leases: &memLeases{}}
	e.is = newIssuer(t, caKind, map[string]RoleConfig{
		"login":  {Principals: []string{e.user}},
		"other":  {Principals: []string{"someone-else"}},
		"source": {Principals: []string{e.user}, CriticalOptions: map[string]string{"source-address": "10.9.9.9/32"}},
		"local":  {Principals: []string{e.user}, CriticalOptions: map[string]string{"source-address": "127.0.0.1/32"}},
		"forced": {Principals: []string{e.user}, CriticalOptions: map[string]string{"force-command": "echo forced-by-cert"}},
	}, e.leases)
	caLine, err := e.is.CALine(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(hostKey, "host")
	if err != nil {
		t.Fatal(err)
	}
	e.krl = filepath.Join(e.dir, "revoked.krl")
	files := map[string]string{
		"host_ed25519": string(pemEncode(block.Type, block.Bytes)),
		"ca.pub":       caLine + "\n",
		"revoked.krl":  "",
		"sshd_config": strings.Join([]string{
			"Port " + e.port, "ListenAddress 127.0.0.1",
			"HostKey " + filepath.Join(e.dir, "host_ed25519"),
			"TrustedUserCAKeys " + filepath.Join(e.dir, "ca.pub"),
			"RevokedKeys " + e.krl,
			"AuthorizedKeysFile none", "PubkeyAuthentication yes", "PasswordAuthentication no",
			"KbdInteractiveAuthentication no", "StrictModes no", "UsePAM no", "PermitRootLogin no",
			"PidFile none", "LogLevel VERBOSE", "",
		}, "\n"),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	e.logs = logs
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", filepath.Join(e.dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+e.port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen: %s", logs.String())
		}
	}
	return e
}

// syncBuffer collects sshd's log while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mint issues a certificate for a fresh client key and writes both files
// as `ssh -i` expects them.
func (e *sshdEnv) mint(t *testing.T, leaseID, role string, issued, expires time.Time) (keyPath string) {
	priv, pub := clientKey(t)
	res, err := e.is.Issue(t.Context(), request(leaseID, role, map[string]string{"public_key": pub}, issued, expires))
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPath = filepath.Join(e.dir, leaseID)
	if err := os.WriteFile(keyPath, pemEncode(block.Type, block.Bytes), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+"-cert.pub", []byte(res.Credential["certificate"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyPath
}

// run logs in with the key and its certificate and runs command.
func (e *sshdEnv) run(t *testing.T, keyPath, command string) (string, error) {
	cmd := exec.Command(e.ssh, "-F", "/dev/null", "-p", e.port, "-i", keyPath,
		"-o", "CertificateFile="+keyPath+"-cert.pub", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR", e.user+"@127.0.0.1", command)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSSHDAcceptsAndRefusesCertificates(t *testing.T) {
	e := startSSHD(t, "ed25519")
	now := time.Now()
	const ok = "stint-login-ok"
	cases := []struct {
		name    string
		lease   string
		role    string
		issued  time.Time
		expires time.Time
		revoke  bool
		want    string // output expected; "" means the login must fail
		why     string // what sshd logs for the refusal
	}{
		{"login works", "l-ok", "login", now, now.Add(5 * time.Minute), false, ok, ""},
		{"principal not in certificate refused", "l-other", "other", now, now.Add(5 * time.Minute), false, "", "name is not a listed principal"},
		{"expired certificate refused", "l-expired", "login", now.Add(-2 * time.Hour), now.Add(-time.Hour), false, "", "Certificate invalid: expired"},
		{"revoked certificate in the krl refused", "l-revoked", "login", now, now.Add(5 * time.Minute), true, "", "revoked by file " + e.krl},
		{"source-address elsewhere refused", "l-source", "source", now, now.Add(5 * time.Minute), false, "", "not from a permitted source address"},
		{"source-address matching accepted", "l-local", "local", now, now.Add(5 * time.Minute), false, ok, ""},
		{"force-command replaces the command", "l-forced", "forced", now, now.Add(5 * time.Minute), false, "forced-by-cert", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := e.mint(t, tc.lease, tc.role, tc.issued, tc.expires)
			if tc.revoke {
				// Before revocation the same certificate logs in.
				if out, err := e.run(t, key, "echo "+ok); err != nil || !strings.Contains(out, ok) {
					t.Fatalf("before revocation: %v %q", err, out)
				}
				e.leases.add(core.Lease{ID: tc.lease, Target: "bastion", State: core.LeaseRevoked, ExpiresAt: tc.expires})
				krl, err := e.is.KRL(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.krl, krl, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := e.run(t, key, "echo "+ok)
			if tc.want == "" {
				if err == nil || strings.Contains(out, ok) {
					t.Fatalf("login succeeded: %q", out)
				}
				if !strings.Contains(out, "Permission denied") {
					t.Fatalf("want Permission denied, got %v: %q", err, out)
				}
				// sshd logs the refusal before the client sees it.
				if !strings.Contains(e.logs.String(), tc.why) {
					t.Fatalf("sshd did not log %q:\n%s", tc.why, e.logs.String())
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.want) || (tc.want != ok && strings.Contains(out, ok)) {
				t.Fatalf("got %v: %q, want output %q", err, out, tc.want)
			}
		})
	}
}

// TestSSHDAcceptsEveryCAKind logs in with certificates signed by each CA
// key kind, RSA signing with rsa-sha2-512.
func TestSSHDAcceptsEveryCAKind(t *testing.T) {
	for _, kind := range []string{"ecdsa-p256", "rsa-3072"} {
		t.Run(kind, func(t *testing.T) {
			e := startSSHD(t, kind)
			now := time.Now()
			key := e.mint(t, "l-"+kind, "login", now, now.Add(5*time.Minute))
			out, err := e.run(t, key, "echo kind-ok")
			if err != nil || !strings.Contains(out, "kind-ok") {
				t.Fatal(fmt.Errorf("login with a %s ca: %v: %q", kind, err, out))
			}
		})
	}
}
