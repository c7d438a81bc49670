package scan

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestScanGitReportsRemovedKeyWithItsCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.org",
			"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.org",
			"GIT_AUTHOR_DATE=2024-03-01T10:00:00Z", "GIT_COMMITTER_DATE=2024-03-01T10:00:00Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("init", "-q", "-b", "main")
	write("README.md", "hello\n")
	run("add", ".")
	run("commit", "-q", "-m", "first")
	removed := ghToken("ghp_", "Zq3Tx9LmA7bKcR2vWn5YpE8sDf4Hj6")
	kept := ghToken("ghs_", "Pw4Ns8Lk2Jh6Gf0Dd3Sa7Qz1Xc5Vb9")
	write("config.go", "package c\n\nconst token = \""+removed+"\"\n")
	write("deploy.sh", "export GH=\""+kept+"\"\n")
	run("add", ".")
	run("commit", "-q", "-m", "add config")
	added := run("rev-parse", "HEAD")[:40]
	write("config.go", "package c\n\nvar token = os.Getenv(\"GH_TOKEN\")\n")
	run("commit", "-q", "-am", "remove the key")

	var got []Finding
	st, err := New(Options{Workers: 2}).ScanGit(context.Background(), dir, func(f Finding) { got = append(got, f) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files < 4 {
		t.Errorf("scanned %d blobs, want every blob (4)", st.Files)
	}
	if len(got) != 2 {
		t.Fatalf("got %d findings, want 2: %+v", len(got), got)
	}
	byFile := map[string]Finding{}
	for _, f := range got {
		byFile[f.File] = f
	}
	rm, ok := byFile["config.go"]
	if !ok || rm.Commit != added || rm.PresentAtHead == nil || *rm.PresentAtHead || rm.Line != 3 || rm.Author != "Ada <ada@example.org>" {
		t.Errorf("removed key finding = %+v, want commit %s, line 3, present_at_head=false", rm, added)
	}
	if k := byFile["deploy.sh"]; k.PresentAtHead == nil || !*k.PresentAtHead {
		t.Errorf("kept key finding = %+v, want present_at_head=true", k)
	}
}
