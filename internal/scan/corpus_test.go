package scan

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestCorpusPrecisionAndRecall scans testdata/corpus (written by
// testdata/gen) and compares the findings with corpus-expected.json by file
// and line. It fails when precision or recall drops below 0.95, or when a
// planted credential is reported under another rule.
func TestCorpusPrecisionAndRecall(t *testing.T) {
	data, err := os.ReadFile("testdata/corpus-expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var files []struct {
		Path   string `json:"path"`
		Expect []struct {
			Line int    `json:"line"`
			Rule string `json:"rule"`
		} `json:"expect"`
	}
	if err := json.Unmarshal(data, &files); err != nil {
		t.Fatal(err)
	}
	type key struct {
		file string
		line int
	}
	want := map[key]string{}
	for _, f := range files {
		for _, e := range f.Expect {
			want[key{f.Path, e.Line}] = e.Rule
		}
	}
	root := filepath.Join("testdata", "corpus")
	got := map[key]string{}
	_, err = New(Options{Workers: 2}).ScanPaths(context.Background(), []string{root}, func(f Finding) {
		rel, _ := filepath.Rel(root, f.File)
		got[key{filepath.ToSlash(rel), f.Line}] = f.RuleID
	})
	if err != nil {
		t.Fatal(err)
	}
	tp := 0
	for k, rule := range got {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("false positive: %s:%d (%s)", k.file, k.line, rule)
		case w != rule:
			t.Errorf("%s:%d reported as %s, planted as %s", k.file, k.line, rule, w)
			tp++
		default:
			tp++
		}
	}
	for k, rule := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("missed: %s:%d (%s)", k.file, k.line, rule)
		}
	}
	precision := float64(tp) / float64(max(len(got), 1))
	recall := float64(tp) / float64(max(len(want), 1))
	t.Logf("corpus: %d planted, %d reported, precision %.3f, recall %.3f", len(want), len(got), precision, recall)
	if precision < 0.95 || recall < 0.95 {
		t.Fatalf("precision %.3f, recall %.3f: want both >= 0.95", precision, recall)
	}
}
