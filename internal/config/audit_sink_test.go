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
			text := strings.Replace(good, "    - { type: file, path: /tmp/stint-test/audit.jsonl }",
				"    - { type: file, path: /tmp/stint-test/audit.jsonl }\n    - "+tc.sink, 1)
			cfg, err := Parse("stint.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			cfg.SetDefaults()
			err = cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "stint.yaml:") {
					t.Fatalf("Validate = %v, want %q with file:line", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Audit.Sinks[1].OnFull; got != tc.want {
				t.Fatalf("on_full = %q, want %q", got, tc.want)
			}
		})
	}
}
