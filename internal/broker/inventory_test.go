package broker

import (
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

func TestCheckReportRefusesFieldsThatCouldHoldASecret(t *testing.T) {
	good := store.Finding{Fingerprint: strings.Repeat("ab", 16), File: "cmd/main.go", Rule: "github-token",
		Line: 3, Commit: strings.Repeat("c", 40), Redacted: "ghp_…Zx"}
	with := func(mod func(*store.Finding)) []store.Finding {
		f := good
		mod(&f)
		return []store.Finding{good, f}
	}
	tests := []struct {
		name    string
		source  string
		fs      []store.Finding
		wantErr string // "" : accepted
	}{
		{"valid", "repo", []store.Finding{good}, ""},
		{"empty report", "repo", nil, ""},
		{"no source", "", []store.Finding{good}, "source"},
		{"source with a newline", "a\nb", []store.Finding{good}, "source"},
		{"too many findings", "repo", make([]store.Finding, MaxInventoryFindings+1), "at most 10000"},
		{"raw token as fingerprint", "repo", with(func(f *store.Finding) { f.Fingerprint = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB" }), "finding 1: fingerprint"},
		{"uppercase hex fingerprint", "repo", with(func(f *store.Finding) { f.Fingerprint = strings.Repeat("AB", 16) }), "finding 1: fingerprint"},
		{"short fingerprint", "repo", with(func(f *store.Finding) { f.Fingerprint = "abcd" }), "finding 1: fingerprint"},
		{"raw secret as redacted form", "repo", with(func(f *store.Finding) { f.Redacted = "sk_live_0123456789abcdefghij" }), "finding 1: redacted"},
		{"no file", "repo", with(func(f *store.Finding) { f.File = "" }), "finding 1: file"},
		{"no rule", "repo", with(func(f *store.Finding) { f.Rule = "" }), "finding 1: rule"},
		{"negative line", "repo", with(func(f *store.Finding) { f.Line = -1 }), "finding 1: line"},
		{"commit not hex", "repo", with(func(f *store.Finding) { f.Commit = "HEAD~1" }), "finding 1: commit"},
		{"no commit", "repo", with(func(f *store.Finding) { f.Commit = "" }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkReport(tc.source, tc.fs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want an invalid-request error mentioning %q", err, tc.wantErr)
			}
		})
	}
}
