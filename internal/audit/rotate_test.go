package audit

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openSegments(t *testing.T, path string) io.Reader {
	t.Helper()
	segs, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []io.Reader
	for _, s := range segs {
		f, err := os.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		rs = append(rs, f)
	}
	return io.MultiReader(rs...)
}

// Rotation by size splits the record into segments; the chain runs on
// across them and a restarted Log resumes from the newest segment.
func TestFileSinkRotatesBySizeAndChainContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink, err := NewFileSink(path, FileOptions{MaxBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: sink, Required: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if err := l.Record(context.Background(), Event{Type: AuthSuccess, Outcome: OutcomeSuccess, Reason: strings.Repeat("x", 50)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := Segments(path)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %v", segs)
	}
	for _, s := range segs[:len(segs)-1] {
		st, err := os.Stat(s)
		if err != nil || st.Size() > 2000 || st.Mode().Perm() != 0o600 {
			t.Fatalf("segment %s: %v %v", s, st, err)
		}
	}
	res, err := Verify(openSegments(t, path))
	if err != nil {
		t.Fatalf("chain across segments: %v", err)
	}
	if res.Events < 40 {
		t.Fatalf("%d events", res.Events)
	}
	// A later segment verifies on its own, as the part of the chain it holds.
	f, _ := os.Open(segs[1])
	defer f.Close()
	if r, err := Verify(f); err != nil || r.FirstSeq <= 1 {
		t.Fatalf("later segment alone: %+v %v", r, err)
	}

	// With events in the current file, they are the head.
	if last, err := LastEventOfRecord(path); err != nil || last == nil || last.Seq != res.LastSeq {
		t.Fatalf("head: %+v %v (want seq %d)", last, err, res.LastSeq)
	}
	// A crash right after rotating leaves an empty current file: the
	// chain resumes from the newest segment.
	want, err := LastEvent(segs[len(segs)-2])
	if err != nil || want == nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	last, err := LastEventOfRecord(path)
	if err != nil || last == nil || last.Seq != want.Seq || last.Hash != want.Hash {
		t.Fatalf("resume: %+v %v (want seq %d)", last, err, want.Seq)
	}
}

// Reopen after an external rename (logrotate, then SIGHUP) writes to a new
// file at the path; the renamed file keeps what was written.
func TestFileSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	sink, err := NewFileSink(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Write(context.Background(), []Event{{Seq: 1, Type: AuthSuccess}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(context.Background(), []Event{{Seq: 2, Type: AuthSuccess}}); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"seq":1`) || !strings.Contains(string(cur), `"seq":2`) || strings.Contains(string(cur), `"seq":1,`) {
		t.Fatalf("old %q cur %q", old, cur)
	}
}
