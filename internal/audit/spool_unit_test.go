package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a deliverFunc's receiver that is down until up is called.
type collector struct {
	mu    sync.Mutex
	down  bool
	okFor int // when > 0, accept this many more batches, then go down
	lines []Event
	calls int
}

func (c *collector) deliver(_ context.Context, lines [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down {
		return errors.New("collector down")
	}
	for _, l := range lines {
		e, err := parseLine(l)
		if err != nil {
			return err
		}
		c.lines = append(c.lines, *e)
	}
	if c.okFor > 0 {
		if c.okFor--; c.okFor == 0 {
			c.down = true
		}
	}
	return nil
}

func (c *collector) up() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
}

func (c *collector) got() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.lines...)
}

// seqEvents returns events with seqs from..to, ready to spool.
func seqEvents(from, to int) []Event {
	var evs []Event
	for i := from; i <= to; i++ {
		e := ev(CredentialUse, i)
		e.Seq, e.ID, e.Hash = uint64(i), itoa(i), GenesisHash
		evs = append(evs, e)
	}
	return evs
}

func testSpoolOptions(dir string) spoolOptions {
	return spoolOptions{Kind: "test", Name: "test:spool", Logger: quiet, SpoolOptions: SpoolOptions{SpoolDir: dir, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}}
}

// TestSpoolFullPolicy fills a spool whose receiver is down, one event per
// write, under each on_full policy, then brings the receiver up: the
// delivered stream accounts for every seq exactly once, in order, each
// either delivered or inside an audit.gap range, and the counters agree.
func TestSpoolFullPolicy(t *testing.T) {
	tests := []struct {
		name         string
		onFull       string
		wantWriteErr bool // writes into the full spool fail
	}{
		{"fail rejects new events and reports them in a gap before the next write", OnFullFail, true},
		{"drop_oldest discards the oldest and puts a gap in their place", OnFullDropOldest, false},
		{"empty on_full means fail", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &collector{down: true}
			so := testSpoolOptions(t.TempDir())
			so.MaxSpoolBytes, so.OnFull = 16<<10, tc.onFull
			s, err := newSpool(so, c.deliver)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			const n = 200
			var failed uint64
			for _, e := range seqEvents(1, n) {
				if err := s.write([]Event{e}); err != nil {
					if !strings.Contains(err.Error(), "spool full") {
						t.Fatal(err)
					}
					failed++
				}
				if st := s.stats(); st.Bytes > so.MaxSpoolBytes {
					t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, so.MaxSpoolBytes)
				}
			}
			st := s.stats()
			if !st.Full || st.DroppedEvents == 0 {
				t.Fatalf("stats after overfilling: %+v", st)
			}
			if (failed > 0) != tc.wantWriteErr || (tc.wantWriteErr && failed != st.DroppedEvents) {
				t.Fatalf("%d writes failed, %d events counted dropped", failed, st.DroppedEvents)
			}
			last := n
			if tc.wantWriteErr {
				// The rejected range is reported with the next write that fits;
				// make room by delivering first.
				c.up()
				waitFor(t, "spool to drain", func() bool { return s.pending() == 0 })
				last++
				if err := s.write(seqEvents(last, last)); err != nil {
					t.Fatal(err)
				}
			}
			c.up()
			waitFor(t, "spool to drain", func() bool { return s.pending() == 0 })
			delivered, lost := checkStream(t, c.got(), uint64(last))
			if lost != s.stats().DroppedEvents || delivered+lost != uint64(last) {
				t.Fatalf("delivered %d, gap events report %d lost, spool counted %d", delivered, lost, s.stats().DroppedEvents)
			}
			if st := s.stats(); st.GapEvents == 0 || st.Events != 0 || st.Full {
				t.Fatalf("stats after draining: %+v", st)
			}
		})
	}
}

// TestSpoolRestartResumesFromSavedOffset delivers one batch, stops the
// spool with the rest undelivered, damages its files as a crash or an
// operator might, and reopens it: delivery resumes where the saved offset
// says, never skipping an event.
func TestSpoolRestartResumesFromSavedOffset(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantSeq []int // first and last seq delivered after the restart
	}{
		{"resumes after the delivered batch", func(*testing.T, string) {}, []int{11, 25}},
		{"torn last line is cut", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "spool.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(`{"seq":26,"time":`); err != nil {
				t.Fatal(err)
			}
		}, []int{11, 25}},
		{"lost offset resends everything (at least once)", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "spool.offset")); err != nil {
				t.Fatal(err)
			}
		}, []int{1, 25}},
		{"offset past the end is ignored", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "spool.offset"), []byte("999999"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []int{1, 25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			so := testSpoolOptions(dir)
			so.BatchEvents = 10
			so.RetryMin = time.Hour // after the first batch, wait until closed
			c := &collector{okFor: 1}
			s, err := newSpool(so, c.deliver)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.write(seqEvents(1, 25)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "first batch", func() bool { return s.stats().Events == 15 })
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			if got := c.got(); len(got) != 10 || got[0].Seq != 1 || got[9].Seq != 10 {
				t.Fatalf("before the restart delivered %v, want seqs 1..10", seqs(got))
			}
			tc.damage(t, dir)

			c2 := &collector{down: true}
			so.RetryMin = 5 * time.Millisecond
			s, err = newSpool(so, c2.deliver)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			first, last := tc.wantSeq[0], tc.wantSeq[1]
			if st := s.stats(); st.Events != int64(last-first+1) {
				t.Fatalf("reopened spool holds %d events, want %d", st.Events, last-first+1)
			}
			c2.up()
			waitFor(t, "spool to drain", func() bool { return s.pending() == 0 })
			got := c2.got()
			if len(got) != last-first+1 {
				t.Fatalf("after the restart delivered %v, want seqs %d..%d", seqs(got), first, last)
			}
			for i, e := range got {
				if e.Seq != uint64(first+i) {
					t.Fatalf("after the restart delivered %v, want seqs %d..%d", seqs(got), first, last)
				}
			}
		})
	}
}

// TestSpoolRejectsBadOptions checks what newSpool refuses.
func TestSpoolRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		so   spoolOptions
	}{
		{"no dir", spoolOptions{Kind: "test"}},
		{"unknown on_full", spoolOptions{Kind: "test", SpoolOptions: SpoolOptions{SpoolDir: t.TempDir(), OnFull: "block"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := newSpool(tc.so, (&collector{}).deliver); err == nil {
				s.close()
				t.Fatalf("accepted %+v", tc.so)
			}
		})
	}
}
