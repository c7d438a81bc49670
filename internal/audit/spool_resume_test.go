package audit

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLogResumesFromSpool records through a Log whose only sink is
// spooled, closes it, and starts a new Log from LastSpooledEvent: the
// chain goes on at the next seq, linked to the last event, whether the
// spool still holds the events or delivered them all and was emptied.
func TestLogResumesFromSpool(t *testing.T) {
	tests := []struct {
		name      string
		receiver  bool // a receiver is up: the spool drains and is emptied
		gapAtTail bool // an audit.gap event follows the last event
	}{
		{"undelivered events", false, false},
		{"undelivered events and a gap event last", false, true},
		{"delivered and emptied spool", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			url := "http://127.0.0.1:1"
			if tc.receiver {
				srv := httptest.NewServer(&receiver{})
				defer srv.Close()
				url = srv.URL
			}
			o := HTTPOptions{URL: url, Format: "ndjson", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: dir, RetryMin: time.Hour}}
			open := func(resume *Event) (*HTTPSink, *Log) {
				s, err := NewHTTPSink(o)
				if err != nil {
					t.Fatal(err)
				}
				l, err := NewLog(Options{Logger: quiet, Resume: resume, Sinks: []SinkConfig{{Sink: s, Required: true}}})
				if err != nil {
					t.Fatal(err)
				}
				return s, l
			}
			if e, err := LastSpooledEvent(dir); e != nil || err != nil {
				t.Fatalf("empty spool: LastSpooledEvent = %v, %v", e, err)
			}
			s, l := open(nil)
			for i := range 5 {
				if err := l.Record(context.Background(), ev(CredentialIssue, i)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.receiver {
				waitFor(t, "spool to drain", func() bool { return s.Pending() == 0 })
			}
			head, headHash := l.Head()
			l.Close()
			if tc.gapAtTail {
				g := gapInfo{dropped: 1, first: 6, last: 6}
				f, err := os.OpenFile(filepath.Join(dir, "spool.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(g.line(time.Now))
				f.Close()
			}

			last, err := LastSpooledEvent(dir)
			if err != nil {
				t.Fatal(err)
			}
			if last == nil || last.Seq != head || last.Hash != headHash {
				t.Fatalf("LastSpooledEvent = %+v, want seq %d hash %s", last, head, headHash)
			}
			_, l = open(last)
			defer l.Close()
			if err := l.Record(context.Background(), ev(CredentialIssue, 9)); err != nil {
				t.Fatal(err)
			}
			if seq, _ := l.Head(); seq != head+1 {
				t.Fatalf("after resuming, head seq %d, want %d", seq, head+1)
			}
		})
	}
}
