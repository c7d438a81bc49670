package app_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditSyslogCollectorDownSpools runs token exchanges against a server
// whose best-effort syslog sink's collector is down: every exchange
// succeeds, and every event of the local record waits, in order, in the
// sink's on-disk spool (spool_dir from the config), where the sender picks
// it up once the collector is back (see audit's
// TestSyslogSpoolDeliversAfterCollectorOutage for that half, against
// rsyslogd).
func TestAuditSyslogCollectorDownSpools(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // reserved and closed: the collector is down
	e := newEnvConfig(t, auditSinksConfig(`    - { type: file, path: {{dir}}/audit.jsonl }
    - { type: syslog, address: "tcp://`+addr+`", spool_dir: {{dir}}/syslog-spool }
`))
	if s := e.app.Config.Audit.Sinks[1]; *s.Required || s.OnFull != "drop_oldest" {
		t.Fatalf("syslog sink defaults: required %v on_full %q", *s.Required, s.OnFull)
	}
	for range 20 {
		tok := e.workload("agents", "support-bot")
		if code, res := e.exchange(url.Values{"subject_token": {tok}, "audience": {"https://api.demo.local"}}); code != 200 {
			t.Fatalf("exchange: %d %v", code, res)
		}
	}
	record := readAuditFile(t, filepath.Join(e.dir, "audit.jsonl"))
	spool := filepath.Join(e.dir, "syslog-spool", "spool.jsonl")
	var spooled []string
	for deadline := time.Now().Add(20 * time.Second); len(spooled) < len(record); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("spool holds %d events, the record %d", len(spooled), len(record))
		}
		b, _ := os.ReadFile(spool)
		spooled = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			spooled = nil
		}
	}
	for i, ev := range record {
		if !strings.Contains(spooled[i], `"id":"`+ev.ID+`"`) {
			t.Fatalf("spool line %d is not event seq %d (id %s): %s", i, ev.Seq, ev.ID, spooled[i])
		}
	}
	st, err := os.Stat(filepath.Dir(spool))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir: %v %v", err, st)
	}
	if !strings.Contains(e.logBuf.String(), "syslog sink delivery failed") {
		t.Fatal("the collector outage was not logged through the server's logger")
	}
}
