package config

import (
	"strings"
	"testing"
)

func TestHTTPSinkOnFull(t *testing.T) {
	tests := []struct {
		name    string
		sink    string
		want    string // on_full after defaults
		wantErr string
	}{
		{"required defaults to fail", `{ type: http, url: "https://siem.example/in", spool_dir: /tmp/s, required: true }`, "fail", ""},
		{"best-effort defaults to drop_oldest", `{ type: http, url: "https://siem.example/in", spool_dir: /tmp/s }`, "drop_oldest", ""},
		{"explicit value is kept", `{ type: http, url: "https://siem.example/in", spool_dir: /tmp/s, on_full: fail }`, "fail", ""},
		{"unknown value is rejected", `{ type: http, url: "https://siem.example/in", spool_dir: /tmp/s, on_full: block }`, "", "on_full: want fail or drop_oldest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkExtraSinks(t, []string{tc.sink}, tc.wantErr, tc.want)
		})
	}
}

func TestSyslogSinkSpool(t *testing.T) {
	const addr = `type: syslog, address: "tcp://siem.example:514"`
	tests := []struct {
		name    string
		sinks   []string // added after the file sink, as audit.sinks[1], [2], …
		want    string   // on_full of audit.sinks[1] after defaults
		wantErr string
	}{
		{"best-effort with a spool defaults to drop_oldest", []string{`{ ` + addr + `, spool_dir: /tmp/s }`}, "drop_oldest", ""},
		{"required with a spool defaults to fail", []string{`{ ` + addr + `, spool_dir: /tmp/s, required: true }`}, "fail", ""},
		{"required without a spool sends synchronously", []string{`{ ` + addr + `, required: true }`}, "", ""},
		{"explicit value is kept", []string{`{ ` + addr + `, spool_dir: /tmp/s, on_full: fail }`}, "fail", ""},
		{"best-effort without a spool is rejected", []string{`{ ` + addr + ` }`}, "",
			"audit.sinks[1].spool_dir: required for a best-effort syslog sink"},
		{"on_full without a spool is rejected", []string{`{ ` + addr + `, required: true, on_full: fail }`}, "",
			"on_full and max_spool_bytes need a spool_dir"},
		{"unknown on_full is rejected", []string{`{ ` + addr + `, spool_dir: /tmp/s, on_full: block }`}, "",
			"audit.sinks[1].on_full: want fail or drop_oldest"},
		{"negative max_spool_bytes is rejected", []string{`{ ` + addr + `, spool_dir: /tmp/s, max_spool_bytes: -1 }`}, "",
			"audit.sinks[1].max_spool_bytes: must not be negative"},
		{"two sinks sharing a spool are rejected", []string{`{ ` + addr + `, spool_dir: /tmp/s }`,
			`{ type: http, url: "https://siem.example/in", spool_dir: /tmp/s/ }`}, "",
			"audit.sinks[2].spool_dir: also used by audit.sinks[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkExtraSinks(t, tc.sinks, tc.wantErr, tc.want)
		})
	}
}

// checkExtraSinks validates the good config with sinks added after its
// file sink: it must fail with wantErr (and a file:line), or pass with the
// first added sink's on_full resolved to wantOnFull.
func checkExtraSinks(t *testing.T, sinks []string, wantErr, wantOnFull string) {
	t.Helper()
	text := strings.Replace(good, "    - { type: file, path: /tmp/stint-test/audit.jsonl }",
		"    - { type: file, path: /tmp/stint-test/audit.jsonl }\n    - "+strings.Join(sinks, "\n    - "), 1)
	cfg, err := Parse("stint.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	err = cfg.Validate()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "stint.yaml:") {
			t.Fatalf("Validate = %v, want %q with file:line", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Audit.Sinks[1].OnFull; got != wantOnFull {
		t.Fatalf("on_full = %q, want %q", got, wantOnFull)
	}
}
