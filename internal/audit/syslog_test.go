package audit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/testenv"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRsyslogd runs a private rsyslogd that writes "MSGID APP PRI MSG"
// lines to the returned file.
func startRsyslogd(t *testing.T) (tcpAddr, udpAddr, out string) {
	bin := testenv.Require(t, "STINT_TEST_RSYSLOGD")
	dir := t.TempDir()
	tp, up := freePort(t, "tcp"), freePort(t, "udp")
	out = filepath.Join(dir, "out.log")
	stop := execRsyslogd(t, bin, dir, tp, up, out)
	t.Cleanup(stop)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tp)), net.JoinHostPort("127.0.0.1", strconv.Itoa(up)), out
}

// execRsyslogd starts rsyslogd with its work files in dir, listening on
// 127.0.0.1 at tcpPort and, unless it is 0, udpPort, and appending
// "MSGID APP PRI MSG" lines to out. It returns once the TCP port accepts
// connections; stop ends rsyslogd (SIGTERM, so it writes out what it has
// read) and waits for it; calling it again does nothing.
func execRsyslogd(t *testing.T, bin, dir string, tcpPort, udpPort int, out string) (stop func()) {
	t.Helper()
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
`, dir, tcpPort)
	if udpPort != 0 {
		conf += fmt.Sprintf(`module(load="imudp")
input(type="imudp" port="%d" address="127.0.0.1")
`, udpPort)
	}
	conf += fmt.Sprintf(`template(name="t" type="string" string="%%msgid%% %%app-name%% %%pri%% %%msg%%\n")
*.* action(type="omfile" file=%q template="t")
`, out)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
	}
	tcpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort))
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", tcpAddr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("rsyslogd did not listen on %s: %v", tcpAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop
}

func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector has %d lines, want %d", len(lines), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkJSONMessage checks one delivered JSON payload against the event sent.
func checkJSONMessage(t *testing.T, msg string, want Event) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		t.Fatalf("payload %q is not JSON: %v", msg, err)
	}
	if m["hash"] != want.Hash || m["id"] != want.ID {
		t.Fatalf("payload lost its hash or id: %s", msg)
	}
	if m["truncated"] == true {
		if _, ok := m["details"]; ok {
			t.Fatalf("truncated payload kept details: %s", msg)
		}
		return
	}
	e, err := parseLine([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := computeHash(e); h != want.Hash {
		t.Fatalf("delivered event does not hash to its hash: %s", msg)
	}
}

func TestSyslogSinkToRsyslogd(t *testing.T) {
	tcpAddr, udpAddr, out := startRsyslogd(t)
	big := ev(AdminPrefix+"policy.update", 99)
	big.Details = map[string]any{"policy": strings.Repeat("p", 5000)}
	tests := []struct {
		network, addr string
		events        int
	}{
		{"tcp", tcpAddr, 30},
		{"udp", udpAddr, 5},
	}
	var sent []Event
	for _, tc := range tests {
		s, err := NewSyslogSink(SyslogOptions{Network: tc.network, Address: tc.addr, Hostname: "host one", MaxMessage: 2048})
		if err != nil {
			t.Fatal(err)
		}
		m := &memSink{}
		l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: s, Required: true}, {Sink: m, Required: true}}})
		evs := []Event{big}
		for i := range tc.events - 1 {
			evs = append(evs, ev(CredentialIssue, i))
		}
		if err := l.RecordAll(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		l.Close()
		sent = append(sent, m.got()...)
		waitLines(t, out, len(sent))
	}
	lines := waitLines(t, out, len(sent))
	if len(lines) != len(sent) {
		t.Fatalf("collector has %d lines, sent %d", len(lines), len(sent))
	}
	truncated := 0
	for i, line := range lines {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) != 4 {
			t.Fatalf("line %q", line)
		}
		want := sent[i]
		if parts[0] != want.Type || parts[1] != "stint" || parts[2] != strconv.Itoa(13*8+6) {
			t.Fatalf("header fields %q, want msgid %s app stint pri 110", parts[:3], want.Type)
		}
		msg := strings.TrimSpace(parts[3])
		if strings.Contains(msg, `"truncated":true`) {
			truncated++
		}
		checkJSONMessage(t, msg, want)
	}
	if truncated != 2 {
		t.Fatalf("%d truncated messages, want the 2 oversized ones", truncated)
	}
}

func TestSyslogCEFPayload(t *testing.T) {
	e := ev(PolicyDeny, 1)
	e.Outcome, e.Reason, e.Source = OutcomeDenied, "rule a=b|c", "10.0.0.1:555"
	e.Seq, e.Hash, e.ID = 7, strings.Repeat("a", 64), "id1"
	tests := []struct {
		name      string
		room      int
		want      []string
		truncated bool
	}{
		{"full", 2000, []string{"CEF:0|stint|stint|1|policy.deny|policy.deny|6|", `reason=rule a\=b|c`, "src=10.0.0.1", "cs1Label=seq cs1=7", `msg={"aud":["a","b"],"ttl":300}`}, false},
		{"truncated drops details", -1, []string{"cn1Label=truncated cn1=1", "cs2=" + e.Hash}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.room < 0 { // one byte short of the full message
				full, _ := fitCEF(&e, 1<<20)
				tc.room = len(full) - 1
			}
			b, err := fitCEF(&e, tc.room)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if len(s) > tc.room {
				t.Fatalf("%d bytes exceed room %d", len(s), tc.room)
			}
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q lacks %q", s, w)
				}
			}
			if strings.Contains(s, "msg=") == tc.truncated {
				t.Errorf("details present = %v in %q", !tc.truncated, s)
			}
		})
	}
}

// TestSyslogSinkTLS sends over TLS with octet counting to a TLS listener
// and checks the frames.
func TestSyslogSinkTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var frames []string
		for len(frames) < 3 {
			n, err := br.ReadString(' ')
			if err != nil {
				break
			}
			size, _ := strconv.Atoi(strings.TrimSpace(n))
			buf := make([]byte, size)
			if _, err := io.ReadFull(br, buf); err != nil {
				break
			}
			frames = append(frames, string(buf))
		}
		got <- frames
	}()
	s, err := NewSyslogSink(SyslogOptions{Network: "tls", Address: ln.Addr().String(), Format: "cef",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: s, Required: true}}})
	if err := l.RecordAll(context.Background(), ev(AuthSuccess, 1), ev(AuthFailure, 2), ev(CredentialRevoke, 3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	select {
	case frames := <-got:
		if len(frames) != 3 || !strings.HasPrefix(frames[1], "<110>1 ") || !strings.Contains(frames[1], " auth.failure - CEF:0|stint|") {
			t.Fatalf("frames %q", frames)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no frames received")
	}
}

func TestNewSyslogSinkRejectsBadOptions(t *testing.T) {
	for _, o := range []SyslogOptions{
		{Network: "http", Address: "x:1"},
		{Network: "udp"},
		{Network: "tcp", Address: "x:1", Format: "xml"},
		{Network: "tcp", Address: "x:1", MaxMessage: 100},
		{Network: "tcp", Address: "x:1", Facility: 24},
	} {
		if _, err := NewSyslogSink(o); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
