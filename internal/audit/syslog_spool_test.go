package audit

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/testenv"
)

// TestSyslogSpoolDeliversAfterCollectorOutage records events through a
// best-effort spooled TCP syslog sink while nothing listens, restarts the
// sink (the events must survive on disk), then starts rsyslogd on that
// port: every event arrives once, in order. Then rsyslogd is stopped and
// started again while the sink holds a connection to the old one: the
// events recorded in between arrive too (none go into the dead connection).
func TestSyslogSpoolDeliversAfterCollectorOutage(t *testing.T) {
	bin := testenv.Require(t, "STINT_TEST_RSYSLOGD")
	dir := t.TempDir()
	port := freePort(t, "tcp")
	addr := net.JoinHostPort("127.0.0.1", itoa(port))
	out := filepath.Join(dir, "out.log")
	o := SyslogOptions{Network: "tcp", Address: addr, Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: filepath.Join(dir, "spool"), SpoolFsync: true, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}}
	// Collector down: Record returns at once (the test would hang
	// otherwise), and the events wait in the spool.
	const n = 2000
	s, err := NewSyslogSink(o)
	if err != nil {
		t.Fatal(err)
	}
	m := &memSink{}
	l, err := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: m, Required: true}, {Sink: s}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Record(context.Background(), ev(CredentialUse, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "events to reach the spool", func() bool { return s.SpoolStats().Events == n })
	sent := m.got()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart of stint while the collector is still down.
	s, err = NewSyslogSink(o)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.SpoolStats(); st.Events != n {
		t.Fatalf("after reopening, spool holds %d events, want %d", st.Events, n)
	}
	l, err = NewLog(Options{Logger: quiet, Resume: &sent[n-1], Sinks: []SinkConfig{{Sink: m, Required: true}, {Sink: s}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	stop := execRsyslogd(t, bin, dir, port, 0, out)
	defer func() { stop() }()
	waitFor(t, "spool to drain", func() bool { return s.Pending() == 0 })
	checkCollected(t, waitLines(t, out, n), sent)

	// Collector restart: the sink's connection is to the stopped rsyslogd.
	stop()
	const more = 300
	for i := range more {
		if err := l.Record(context.Background(), ev(CredentialIssue, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "events to reach the spool", func() bool { return s.SpoolStats().Events == more })
	stop = execRsyslogd(t, bin, dir, port, 0, out)
	sent = m.got()
	if len(sent) != n+more {
		t.Fatalf("required sink got %d events, want %d", len(sent), n+more)
	}
	waitFor(t, "spool to drain", func() bool { return s.Pending() == 0 })
	checkCollected(t, waitLines(t, out, n+more), sent)
}

// checkCollected checks rsyslogd's "MSGID APP PRI MSG" lines against the
// events sent: the same events, in order, each exactly once by id.
func checkCollected(t *testing.T, lines []string, sent []Event) {
	t.Helper()
	seen := map[string]bool{}
	for i, line := range lines {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) != 4 {
			t.Fatalf("line %d: %q", i, line)
		}
		var e struct {
			Seq uint64 `json:"seq"`
			ID  string `json:"id"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(parts[3])), &e); err != nil {
			t.Fatalf("line %d: payload is not JSON: %v", i, err)
		}
		if seen[e.ID] {
			t.Fatalf("line %d: event id %s (seq %d) delivered twice", i, e.ID, e.Seq)
		}
		seen[e.ID] = true
		if i >= len(sent) {
			t.Fatalf("collector has %d lines, %d events were sent", len(lines), len(sent))
		}
		if e.ID != sent[i].ID || e.Seq != sent[i].Seq || parts[0] != sent[i].Type {
			t.Fatalf("line %d is seq %d id %s, want seq %d id %s: out of order", i, e.Seq, e.ID, sent[i].Seq, sent[i].ID)
		}
	}
	if len(lines) != len(sent) {
		t.Fatalf("collector has %d lines, want %d", len(lines), len(sent))
	}
}
