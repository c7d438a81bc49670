package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/testenv"
)

// testCA makes a CA and a server certificate for 127.0.0.1 and localhost,
// writes them as PEM into dir, and returns the file paths and a pool
// holding the CA.
func testCA(t *testing.T, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stint test syslog CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER),
		write("server.key", "PRIVATE KEY", keyDER), pool
}

// startRsyslogdTLS runs a private rsyslogd with imtcp on the gtls stream
// driver (TLS only, clients not authenticated) writing "MSGID APP PRI MSG"
// lines to the returned file.
func startRsyslogdTLS(t *testing.T) (addr, out string, pool *x509.CertPool) {
	bin := testenv.Require(t, "STINT_TEST_RSYSLOGD")
	dir := t.TempDir()
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil {
		if matches, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(matches) == 0 {
			if os.Getenv("STINT_REQUIRE_SERVICES") == "1" {
				t.Fatal("rsyslog's gtls driver is missing: install rsyslog-gnutls")
			}
			t.Skip("rsyslog's gtls driver is missing: install rsyslog-gnutls")
		}
	}
	caFile, certFile, keyFile, pool := testCA(t, dir)
	port := freePort(t, "tcp")
	out = filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile=%q
  DefaultNetstreamDriverCertFile=%q
  DefaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="%d" address="127.0.0.1")
template(name="t" type="string" string="%%msgid%% %%app-name%% %%pri%% %%msg%%\n")
*.* action(type="omfile" file=%q template="t")
`, dir, caFile, certFile, keyFile, port, out)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Wait for a completed TLS handshake, which also checks the certificate.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not accept TLS on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, out, pool
}

// TestSyslogSinkTLSToRsyslogd sends over TLS (RFC 5425 octet counting) to
// a real rsyslogd with the gtls driver; every event arrives intact, its
// payload hashing to the event's hash, oversized ones truncated verifiably.
func TestSyslogSinkTLSToRsyslogd(t *testing.T) {
	addr, out, pool := startRsyslogdTLS(t)
	s, err := NewSyslogSink(SyslogOptions{Network: "tls", Address: addr,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	m := &memSink{}
	l, err := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: s, Required: true}, {Sink: m, Required: true}}})
	if err != nil {
		t.Fatal(err)
	}
	big := ev(AdminPrefix+"policy.update", 0)
	big.Details = map[string]any{"policy": strings.Repeat("p", 20000)}
	evs := []Event{big}
	for i := 1; i < 50; i++ {
		evs = append(evs, ev(CredentialIssue, i))
	}
	evs = append(evs, Event{Type: PolicyDeny, Outcome: OutcomeDenied, Reason: "no rule grants it: ünïcödé <&>"})
	for _, e := range evs {
		if err := l.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	sent := m.got()
	lines := waitLines(t, out, len(sent))
	if len(lines) != len(sent) {
		t.Fatalf("rsyslogd wrote %d lines, %d events sent", len(lines), len(sent))
	}
	truncated := 0
	for i, line := range lines {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) != 4 {
			t.Fatalf("line %q", line)
		}
		want := sent[i]
		pri := strconv.Itoa(13*8 + 6)
		if want.Outcome != OutcomeSuccess {
			pri = strconv.Itoa(13*8 + 4)
		}
		if parts[0] != want.Type || parts[1] != "stint" || parts[2] != pri {
			t.Fatalf("header fields %q, want msgid %s app stint pri %s", parts[:3], want.Type, pri)
		}
		msg := strings.TrimSpace(parts[3])
		if strings.Contains(msg, `"truncated":true`) {
			truncated++
		}
		checkJSONMessage(t, msg, want)
	}
	if truncated != 1 {
		t.Fatalf("%d truncated messages, want the 1 oversized one", truncated)
	}
}
