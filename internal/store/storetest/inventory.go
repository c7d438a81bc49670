package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/store"
)

func finding(fp, file string, line int) store.Finding {
	return store.Finding{Fingerprint: fp, File: file, Line: line, Rule: "github-token",
		Commit: "", Redacted: "ghp_…" + fp[len(fp)-2:], PresentAtHead: true}
}

func upsert(t *testing.T, s store.Store, source string, at time.Time, fs ...store.Finding) store.InventoryDiff {
	t.Helper()
	d, err := s.UpsertFindings(context.Background(), source, fs, at)
	if err != nil {
		t.Fatalf("UpsertFindings(%s, %d findings): %v", source, len(fs), err)
	}
	return d
}

func list(t *testing.T, s store.Store, f store.FindingFilter) map[string]store.Finding {
	t.Helper()
	fs, err := s.ListFindings(context.Background(), f)
	if err != nil {
		t.Fatalf("ListFindings(%+v): %v", f, err)
	}
	out := map[string]store.Finding{}
	for _, x := range fs {
		out[x.Source+"|"+x.Fingerprint+"|"+x.File] = x
	}
	if len(out) != len(fs) {
		t.Fatalf("ListFindings returned %d rows for %d keys", len(fs), len(out))
	}
	return out
}

func testInventoryInsert(t *testing.T, s store.Store) {
	a := finding("aaaa01", "cmd/main.go", 12)
	a.Commit = "0123abcd"
	b := finding("bbbb02", ".env", 3)
	b.Rule = "stripe-secret-key"
	if d := upsert(t, s, "git@example.com:shop.git", base, a, b); d != (store.InventoryDiff{New: 2}) {
		t.Fatalf("diff = %+v, want 2 new", d)
	}
	got := list(t, s, store.FindingFilter{})
	for _, want := range []store.Finding{a, b} {
		want.Source = "git@example.com:shop.git"
		want.FirstSeen, want.LastSeen = base.UTC(), base.UTC()
		g, ok := got[want.Source+"|"+want.Fingerprint+"|"+want.File]
		if !ok {
			t.Fatalf("finding %s missing from %v", want.Fingerprint, got)
		}
		if g != want {
			t.Errorf("stored finding\n got %+v\nwant %+v", g, want)
		}
		if !g.Open() {
			t.Errorf("new finding %s is not open", g.Fingerprint)
		}
	}
}

func testInventoryLifecycle(t *testing.T, s store.Store) {
	const src = "shop"
	t1, t2, t3 := base, base.Add(time.Hour), base.Add(2*time.Hour)
	a, b := finding("aaaa01", "a.go", 1), finding("bbbb02", "b.go", 2)
	upsert(t, s, src, t1, a, b)

	// b is gone at t2: a full snapshot without it remediates it.
	if d := upsert(t, s, src, t2, a); d != (store.InventoryDiff{Present: 1, Remediated: 1}) {
		t.Fatalf("second report diff = %+v, want 1 present, 1 remediated", d)
	}
	got := list(t, s, store.FindingFilter{Source: src})
	ga, gb := got[src+"|aaaa01|a.go"], got[src+"|bbbb02|b.go"]
	if !ga.FirstSeen.Equal(t1) || !ga.LastSeen.Equal(t2) || !ga.Open() {
		t.Errorf("still-present finding = %+v, want first_seen t1, last_seen t2, open", ga)
	}
	if !gb.FirstSeen.Equal(t1) || !gb.LastSeen.Equal(t1) || !gb.RemediatedAt.Equal(t2) || gb.PresentAtHead {
		t.Errorf("gone finding = %+v, want first/last seen t1, remediated t2, not at head", gb)
	}
	open := list(t, s, store.FindingFilter{Source: src, State: store.FindingOpen})
	rem := list(t, s, store.FindingFilter{Source: src, State: store.FindingRemediated})
	if _, ok := open[src+"|aaaa01|a.go"]; len(open) != 1 || !ok {
		t.Errorf("open findings = %v, want only aaaa01", open)
	}
	if _, ok := rem[src+"|bbbb02|b.go"]; len(rem) != 1 || !ok {
		t.Errorf("remediated findings = %v, want only bbbb02", rem)
	}

	// The same report again changes nothing but last_seen.
	if d := upsert(t, s, src, t2.Add(time.Minute), a); d != (store.InventoryDiff{Present: 1}) {
		t.Fatalf("repeated report diff = %+v, want 1 present", d)
	}
	if gb := list(t, s, store.FindingFilter{Source: src})[src+"|bbbb02|b.go"]; !gb.RemediatedAt.Equal(t2) {
		t.Errorf("remediated_at moved to %v on a later report, want t2 kept", gb.RemediatedAt)
	}

	// b comes back at t3 (a reverted commit): reopened, first_seen kept.
	if d := upsert(t, s, src, t3, a, b); d != (store.InventoryDiff{Present: 1, Reopened: 1}) {
		t.Fatalf("third report diff = %+v, want 1 present, 1 reopened", d)
	}
	gb = list(t, s, store.FindingFilter{Source: src})[src+"|bbbb02|b.go"]
	if !gb.Open() || !gb.PresentAtHead || !gb.FirstSeen.Equal(t1) || !gb.LastSeen.Equal(t3) {
		t.Errorf("reappeared finding = %+v, want open, at head, first_seen t1, last_seen t3", gb)
	}

	// An empty report remediates everything of the source.
	if d := upsert(t, s, src, t3.Add(time.Hour)); d != (store.InventoryDiff{Remediated: 2}) {
		t.Fatalf("empty report diff = %+v, want 2 remediated", d)
	}
	if open := list(t, s, store.FindingFilter{State: store.FindingOpen}); len(open) != 0 {
		t.Errorf("open findings after an empty report: %v", open)
	}
}

func testInventoryHistory(t *testing.T, s store.Store) {
	const src = "repo"
	a := finding("aaaa01", "old.go", 5)
	upsert(t, s, src, base, a)
	hist := a
	hist.PresentAtHead = false
	hist.Commit = "feedbeef"
	if d := upsert(t, s, src, base.Add(time.Hour), hist); d != (store.InventoryDiff{Remediated: 1}) {
		t.Fatalf("history-only report diff = %+v, want 1 remediated", d)
	}
	g := list(t, s, store.FindingFilter{})[src+"|aaaa01|old.go"]
	if g.Open() || g.PresentAtHead || !g.LastSeen.Equal(base.Add(time.Hour)) || g.Commit != "feedbeef" {
		t.Errorf("history-only finding = %+v, want remediated, not at head, last_seen updated, commit feedbeef", g)
	}
	// Seen in history again later: still remediated since the first time.
	upsert(t, s, src, base.Add(2*time.Hour), hist)
	if g := list(t, s, store.FindingFilter{})[src+"|aaaa01|old.go"]; !g.RemediatedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("remediated_at = %v, want the first time it left HEAD", g.RemediatedAt)
	}
	// A finding first seen only in history is new and remediated at once.
	other := finding("cccc03", "gone.go", 1)
	other.PresentAtHead = false
	if d := upsert(t, s, src, base.Add(3*time.Hour), hist, other); d != (store.InventoryDiff{New: 1}) {
		t.Fatalf("diff = %+v, want 1 new", d)
	}
	if g := list(t, s, store.FindingFilter{})[src+"|cccc03|gone.go"]; g.Open() {
		t.Errorf("history-only new finding is open: %+v", g)
	}
}

func testInventorySources(t *testing.T, s store.Store) {
	a := finding("aaaa01", "a.go", 1)
	upsert(t, s, "one", base, a)
	if d := upsert(t, s, "two", base.Add(time.Hour), a); d != (store.InventoryDiff{New: 1}) {
		t.Fatalf("same finding in another source: diff %+v, want 1 new", d)
	}
	upsert(t, s, "two", base.Add(2*time.Hour))
	if g := list(t, s, store.FindingFilter{Source: "one"}); !g["one|aaaa01|a.go"].Open() {
		t.Errorf("a report of source two remediated source one's finding: %+v", g)
	}
	if g := list(t, s, store.FindingFilter{Source: "two"}); g["two|aaaa01|a.go"].Open() {
		t.Errorf("source two's finding is still open after its empty report: %+v", g)
	}
}

func testInventoryDuplicates(t *testing.T, s store.Store) {
	hi, lo := finding("aaaa01", "a.go", 40), finding("aaaa01", "a.go", 7)
	if d := upsert(t, s, "src", base, hi, lo, finding("aaaa01", "b.go", 9)); d != (store.InventoryDiff{New: 2}) {
		t.Fatalf("diff = %+v, want 2 new (one per file)", d)
	}
	if g := list(t, s, store.FindingFilter{})["src|aaaa01|a.go"]; g.Line != 7 {
		t.Errorf("line = %d, want the lowest, 7", g.Line)
	}
	// The secret moved down the file: same row, new line, not a new finding.
	if d := upsert(t, s, "src", base.Add(time.Hour), finding("aaaa01", "a.go", 12), finding("aaaa01", "b.go", 9)); d != (store.InventoryDiff{Present: 2}) {
		t.Fatalf("moved line diff = %+v, want 2 present", d)
	}
	if g := list(t, s, store.FindingFilter{})["src|aaaa01|a.go"]; g.Line != 12 || !g.FirstSeen.Equal(base) {
		t.Errorf("moved finding = %+v, want line 12 and first_seen kept", g)
	}
}

func testInventoryLarge(t *testing.T, s store.Store) {
	const n = 1234 // more than one upsert chunk
	fs := make([]store.Finding, n)
	for i := range fs {
		fs[i] = finding(fmt.Sprintf("%032x", i), fmt.Sprintf("f/%d.go", i%10), i+1)
		if i%2 == 1 {
			fs[i].Rule = "aws-access-key-id"
		}
	}
	if d := upsert(t, s, "big", base, fs...); d.New != n {
		t.Fatalf("diff = %+v, want %d new", d, n)
	}
	if d := upsert(t, s, "big", base.Add(time.Hour), fs[:n-100]...); d != (store.InventoryDiff{Present: n - 100, Remediated: 100}) {
		t.Fatalf("diff = %+v, want %d present, 100 remediated", d, n-100)
	}
	tests := []struct {
		name string
		f    store.FindingFilter
		want int
	}{
		{"all", store.FindingFilter{}, n},
		{"open", store.FindingFilter{State: store.FindingOpen}, n - 100},
		{"remediated", store.FindingFilter{State: store.FindingRemediated}, 100},
		{"rule", store.FindingFilter{Rule: "aws-access-key-id"}, n / 2},
		{"rule and state", store.FindingFilter{Rule: "aws-access-key-id", State: store.FindingRemediated}, 50},
		{"fingerprint", store.FindingFilter{Fingerprint: fmt.Sprintf("%032x", 3)}, 1},
		{"limit", store.FindingFilter{Limit: 10}, 10},
		{"other source", store.FindingFilter{Source: "nope"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListFindings(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%d findings, want %d", len(got), tc.want)
			}
		})
	}
	if _, err := s.ListFindings(context.Background(), store.FindingFilter{State: "closed"}); err == nil {
		t.Error("ListFindings accepted an unknown state")
	}
}

func testInventoryInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	good := finding("aaaa01", "a.go", 1)
	tests := []struct {
		name   string
		source string
		fs     []store.Finding
		at     time.Time
	}{
		{"no source", "", []store.Finding{good}, base},
		{"no fingerprint", "s", []store.Finding{good, {File: "b.go", Rule: "r"}}, base},
		{"no file", "s", []store.Finding{good, {Fingerprint: "ff", Rule: "r"}}, base},
		{"no time", "s", []store.Finding{good}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.UpsertFindings(ctx, tc.source, tc.fs, tc.at); err == nil {
				t.Fatal("UpsertFindings accepted an invalid report")
			}
			if got := list(t, s, store.FindingFilter{}); len(got) != 0 {
				t.Errorf("an invalid report wrote %d findings", len(got))
			}
		})
	}
}
