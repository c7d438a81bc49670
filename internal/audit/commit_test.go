package audit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// slowCommitSink is a memSink that asks for a long commit delay and counts
// its Writes, so a test can tell a writer that waited from one that did not.
type slowCommitSink struct {
	memSink
	delay  time.Duration
	writes int
}

func (s *slowCommitSink) CommitDelay() time.Duration { return s.delay }
func (s *slowCommitSink) Write(ctx context.Context, evs []Event) error {
	s.mu.Lock()
	s.writes++
	s.mu.Unlock()
	return s.memSink.Write(ctx, evs)
}

// TestLoneCallerNeverWaitsForCommitDelay: a caller recording one request's
// events at a time on a busy sink has gathered its whole group already, so
// the writer commits at once. With a one-minute delay, a writer that waited
// would run into the context's deadline.
func TestLoneCallerNeverWaitsForCommitDelay(t *testing.T) {
	s := &slowCommitSink{delay: time.Minute}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: s, Required: true}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 50 {
		if err := l.RecordAll(ctx, ev(CredentialIssue, 1), ev(AuthSuccess, 1)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if got := len(s.got()); got != 100 {
		t.Fatalf("sink has %d events, want 100", got)
	}
}

// TestBusySinkGathersGroups: concurrent callers on a sink with a commit
// delay share commits, and every caller still returns only after its
// events were written.
func TestBusySinkGathersGroups(t *testing.T) {
	s := &slowCommitSink{delay: 5 * time.Millisecond}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: s, Required: true}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const callers, each = 16, 40
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if err := l.Record(context.Background(), ev(CredentialIssue, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s.mu.Lock()
	writes, events := s.writes, len(s.events)
	s.mu.Unlock()
	if events != callers*each {
		t.Fatalf("sink has %d events, want %d", events, callers*each)
	}
	if writes >= events/2 {
		t.Fatalf("%d writes for %d events: concurrent callers did not share commits", writes, events)
	}
	t.Logf("%d events in %d writes", events, writes)
}
