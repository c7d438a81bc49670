package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/scan"
	"github.com/stint-dev/stint/internal/scan/scantest"
)

// stint scan --report-to posts every finding (baselined ones too) with the
// caller's token, as JSON holding no secret, and prints the server's counts.
func TestScanReportTo(t *testing.T) {
	g := scantest.New(3)
	secret := g.GitHub()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(fmt.Sprintf("package main\n\nconst token = %q\n", secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("caller-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	var gotAuth string
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/inventory" {
			http.Error(w, "unexpected", http.StatusNotFound)
			return
		}
		gotAuth = r.Header.Get("Authorization")
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"new": 1, "present": 0, "reopened": 0, "remediated": 2}`)
	}))
	defer srv.Close()

	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	// Accept today's finding: CI passes, but the inventory still hears of it.
	if _, err := run("scan", "--write-baseline", baseline, dir); err != nil {
		t.Fatal(err)
	}
	out, err := run("scan", "--baseline", baseline, "--report-to", srv.URL, "--source", "repo-a",
		"--identity", "file", "--identity-token-file", tokFile, dir)
	if err != nil {
		t.Fatalf("scan --report-to: %v\n%s", err, out)
	}
	if gotAuth != "Bearer caller-token" {
		t.Errorf("Authorization = %q, want the caller's token", gotAuth)
	}
	var body struct {
		Source   string         `json:"source"`
		Findings []scan.Finding `json:"findings"`
	}
	if err := json.Unmarshal(gotBody, &body); err != nil {
		t.Fatalf("report body: %v: %s", err, gotBody)
	}
	if body.Source != "repo-a" || len(body.Findings) != 1 || body.Findings[0].RuleID != "github-token" || body.Findings[0].Fingerprint == "" {
		t.Errorf("report = %s, want source repo-a and the baselined github-token finding", gotBody)
	}
	if strings.Contains(string(gotBody), secret) {
		t.Error("the report holds the raw secret")
	}
	if !strings.Contains(out, "1 new, 0 still present, 0 reopened, 2 remediated") {
		t.Errorf("output lacks the server's counts: %s", out)
	}

	for name, args := range map[string][]string{
		"source without report-to": {"scan", "--source", "x", dir},
		"report-to without source": {"scan", "--report-to", srv.URL, dir},
	} {
		if _, err := run(args...); err == nil || errors.Is(err, scan.ErrFindings) {
			t.Errorf("%s: err %v, want a usage error", name, err)
		}
	}
}
