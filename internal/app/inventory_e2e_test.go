package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/scan"
	"github.com/stint-dev/stint/internal/scan/scantest"
)

// scanReport scans dir as `stint scan` does and shapes the findings as
// `stint scan --report-to` posts them.
func scanReport(t *testing.T, dir, source string) client.InventoryReport {
	t.Helper()
	r := client.InventoryReport{Source: source, Findings: []client.InventoryFinding{}}
	_, err := scan.New(scan.Options{}).ScanPaths(context.Background(), []string{dir}, func(f scan.Finding) {
		r.Findings = append(r.Findings, client.InventoryFinding{RuleID: f.RuleID, File: f.File, Line: f.Line,
			Commit: f.Commit, Redacted: f.Redacted, Fingerprint: f.Fingerprint, PresentAtHead: f.PresentAtHead})
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func httpStatus(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

// A tree with two planted keys is reported, one key is removed, the tree
// is reported again: the inventory shows the removed key remediated with
// its first_seen kept, only admins may report or read, the audit record
// counts the changes, and no raw secret reaches the store, the responses,
// the audit record or the log.
func TestInventoryReportRemediationAndAdminOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := client.New(e.url, nil)
	admin := e.human("root", "stint-admins")

	g := scantest.New(9)
	ghToken := g.GitHub()
	awsID, awsSecret := g.AWS()
	secrets := []string{ghToken, awsID, awsSecret}
	src := t.TempDir()
	ghFile := filepath.Join(src, "github.go")
	files := map[string]string{
		ghFile: fmt.Sprintf("package sync\n\nconst defaultToken = %q\n", ghToken),
		filepath.Join(src, "credentials"): "[default]\nregion = eu-west-1\naws_access_key_id = " + awsID +
			"\naws_secret_access_key = " + awsSecret + "\n",
	}
	for p, text := range files {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	first := scanReport(t, src, "git@example.com:shop.git")
	if len(first.Findings) < 3 {
		t.Fatalf("scan found %d findings, want the 3 planted", len(first.Findings))
	}
	var ghFP string
	for _, f := range first.Findings {
		if f.File == ghFile {
			ghFP = f.Fingerprint
		}
	}
	if ghFP == "" {
		t.Fatalf("no finding in %s: %+v", ghFile, first.Findings)
	}

	// Non-admins: a workload and a human outside stint-admins.
	for name, tok := range map[string]string{"workload": e.workload("agents", "support-bot"), "human": e.human("bob", "support")} {
		if _, err := c.ReportInventory(ctx, tok, first); httpStatus(err) != http.StatusForbidden {
			t.Errorf("%s report: err %v, want 403", name, err)
		}
		if _, err := c.Inventory(ctx, tok, client.InventoryFilter{}); httpStatus(err) != http.StatusForbidden {
			t.Errorf("%s list: err %v, want 403", name, err)
		}
	}
	if _, err := c.ReportInventory(ctx, "", first); httpStatus(err) != http.StatusUnauthorized {
		t.Errorf("anonymous report: err %v, want 401", err)
	}

	d1, err := c.ReportInventory(ctx, admin, first)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != (client.InventoryDiff{New: len(first.Findings)}) {
		t.Fatalf("first report diff %+v, want %d new", d1, len(first.Findings))
	}
	before, err := c.Inventory(ctx, admin, client.InventoryFilter{Fingerprint: ghFP})
	if err != nil || len(before) != 1 || before[0].State != "open" {
		t.Fatalf("github finding after first report: %+v, %v", before, err)
	}

	// The key is removed from the tree and the tree is reported again.
	if err := os.Remove(ghFile); err != nil {
		t.Fatal(err)
	}
	second := scanReport(t, src, "git@example.com:shop.git")
	d2, err := c.ReportInventory(ctx, admin, second)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != (client.InventoryDiff{Present: len(second.Findings), Remediated: 1}) {
		t.Fatalf("second report diff %+v, want %d present, 1 remediated", d2, len(second.Findings))
	}
	rem, err := c.Inventory(ctx, admin, client.InventoryFilter{State: "remediated", Source: "git@example.com:shop.git"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rem) != 1 || rem[0].Fingerprint != ghFP || rem[0].RemediatedAt == nil || rem[0].PresentAtHead ||
		!rem[0].FirstSeen.Equal(before[0].FirstSeen) {
		t.Fatalf("remediated findings %+v, want the github key with remediated_at and first_seen %v", rem, before[0].FirstSeen)
	}
	open, err := c.Inventory(ctx, admin, client.InventoryFilter{State: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != len(second.Findings) {
		t.Fatalf("%d open findings, want %d", len(open), len(second.Findings))
	}
	for _, f := range open {
		if f.Fingerprint == ghFP {
			t.Fatalf("removed key still open: %+v", f)
		}
	}

	// A secret posted in place of its fingerprint is refused, not stored.
	bad := client.InventoryReport{Source: "x", Findings: []client.InventoryFinding{{RuleID: "github-token", File: "a.go", Line: 1, Fingerprint: ghToken}}}
	if _, err := c.ReportInventory(ctx, admin, bad); httpStatus(err) != http.StatusBadRequest {
		t.Errorf("raw secret as fingerprint: err %v, want 400", err)
	}
	bad.Findings[0].Fingerprint, bad.Findings[0].Redacted = ghFP, ghToken
	if _, err := c.ReportInventory(ctx, admin, bad); httpStatus(err) != http.StatusBadRequest {
		t.Errorf("raw secret as redacted form: err %v, want 400", err)
	}

	// The audit record counts each report; non-admins' attempts are denied.
	var reports []audit.Event
	denied := 0
	readAudit(t, e.dir, func(ev audit.Event) {
		if ev.Type != "admin.inventory_report" {
			return
		}
		if ev.Outcome == audit.OutcomeDenied {
			denied++
		} else if ev.Outcome == audit.OutcomeSuccess {
			reports = append(reports, ev)
		}
	})
	if denied != 2 || len(reports) != 2 {
		t.Fatalf("audit: %d denied and %d successful reports, want 2 and 2", denied, len(reports))
	}
	if r := reports[1].Details; r["remediated"] != float64(1) || r["new"] != float64(0) || r["source"] != "git@example.com:shop.git" {
		t.Errorf("second report's audit details %v, want remediated 1, new 0 and the source", r)
	}

	// No raw secret anywhere: the store's files, the responses, the audit
	// record, the log.
	resp, err := http.Get(e.url + "/v1/inventory") // unauthenticated: an error body
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/inventory", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	listBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(listBody), ghFP) {
		t.Fatalf("inventory listing lacks the github fingerprint: %s", listBody)
	}
	e.app.Audit.Close()
	texts := map[string]string{"list response": string(listBody), "log": e.logBuf.String()}
	for _, name := range []string{"stint.db", "stint.db-wal", "audit.jsonl"} {
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		texts[name] = string(b)
	}
	for i, s := range secrets {
		for where, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("secret %d found in %s", i, where)
			}
		}
	}
}

// A report larger than max_request_bytes but within max_inventory_bytes
// is accepted; one beyond max_inventory_bytes or the finding count limit
// is refused whole.
func TestInventoryReportLimits(t *testing.T) {
	e := newEnvConfig(t, strings.Replace(testConfig, "  issuer_url: {{url}}\n",
		"  issuer_url: {{url}}\n  max_inventory_bytes: 524288\n", 1))
	ctx := context.Background()
	c := client.New(e.url, nil)
	admin := e.human("root", "stint-admins")
	report := func(n int) client.InventoryReport {
		r := client.InventoryReport{Source: "big", Findings: make([]client.InventoryFinding, n)}
		for i := range r.Findings {
			r.Findings[i] = client.InventoryFinding{RuleID: "generic-secret", File: fmt.Sprintf("src/file%05d.go", i),
				Line: i + 1, Redacted: "ab…", Fingerprint: fmt.Sprintf("%032x", i)}
		}
		return r
	}
	// ~1000 findings are about 150 KB: above the 64 KiB request limit.
	if d, err := c.ReportInventory(ctx, admin, report(1000)); err != nil || d.New != 1000 {
		t.Fatalf("report of 1000 findings: %+v, %v", d, err)
	}
	tooBig := report(5000) // about 750 KB > 512 KiB
	if _, err := c.ReportInventory(ctx, admin, tooBig); httpStatus(err) != http.StatusBadRequest {
		t.Errorf("report over max_inventory_bytes: err %v, want 400", err)
	}
	if got, err := c.Inventory(ctx, admin, client.InventoryFilter{Source: "big", State: "open"}); err != nil || len(got) != 1000 {
		t.Errorf("after the refused report: %d open findings (err %v), want the first report's 1000", len(got), err)
	}
}

// More findings than one report may hold are refused before the store.
func TestInventoryReportFindingLimit(t *testing.T) {
	e := newEnvConfig(t, strings.Replace(testConfig, "  issuer_url: {{url}}\n",
		"  issuer_url: {{url}}\n  max_inventory_bytes: 16777216\n", 1))
	r := client.InventoryReport{Source: "huge", Findings: make([]client.InventoryFinding, 10001)}
	for i := range r.Findings {
		r.Findings[i] = client.InventoryFinding{RuleID: "r", File: "f", Line: i, Fingerprint: fmt.Sprintf("%032x", i)}
	}
	_, err := client.New(e.url, nil).ReportInventory(context.Background(), e.human("root", "stint-admins"), r)
	if httpStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "10000") {
		t.Fatalf("report of 10001 findings: err %v, want 400 naming the limit", err)
	}
}
