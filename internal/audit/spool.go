package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// SpoolOptions configure the on-disk spool in front of an http or syslog
// sink.
type SpoolOptions struct {
	// SpoolDir holds the on-disk spool (created 0700).
	SpoolDir string
	// MaxSpoolBytes bounds the spool file; 0 means 256 MiB. What happens
	// when a batch does not fit is OnFull.
	MaxSpoolBytes int64
	// OnFull is the full-spool policy: OnFullFail ("fail", also "") rejects
	// the new events (Write fails; a required sink then fails the request,
	// a best-effort sink loses them and the Log counts it) and, once there
	// is room again, writes an audit.gap event for them; OnFullDropOldest
	// ("drop_oldest") discards the oldest undelivered events, at least
	// MaxSpoolBytes/16 at a time, and puts one audit.gap event in their
	// place, so the receiver sees exactly which seqs it will never get.
	OnFull string
	// SpoolFsync fsyncs the spool on every Write, so events survive a power
	// loss and not only a process crash.
	SpoolFsync bool
	// BatchEvents bounds the events per delivery (POST or syslog batch); 0 means 500.
	BatchEvents int
	// RetryMin and RetryMax bound the exponential backoff between failed
	// deliveries; 0 means 1s and 1m.
	RetryMin, RetryMax time.Duration
}

// spoolOptions is what a spool runs with: the sink's SpoolOptions, its
// logger and clock, and the Kind ("http", "syslog") and Name (the sink's
// Name) that label log lines and errors.
type spoolOptions struct {
	SpoolOptions
	Logger     *slog.Logger
	Now        func() time.Time // stamps audit.gap events
	Kind, Name string
}

// setDefaults fills zero fields and checks OnFull.
func (so *spoolOptions) setDefaults() error {
	if so.MaxSpoolBytes <= 0 {
		so.MaxSpoolBytes = 256 << 20
	}
	if so.BatchEvents <= 0 {
		so.BatchEvents = 500
	}
	if so.RetryMin <= 0 {
		so.RetryMin = time.Second
	}
	if so.RetryMax < so.RetryMin {
		so.RetryMax = max(time.Minute, so.RetryMin)
	}
	if so.Logger == nil {
		so.Logger = slog.Default()
	}
	if so.Now == nil {
		so.Now = time.Now
	}
	switch so.OnFull {
	case "":
		so.OnFull = OnFullFail
	case OnFullFail, OnFullDropOldest:
	default:
		return fmt.Errorf("audit: %s sink: on_full %q is not %s or %s", so.Kind, so.OnFull, OnFullFail, OnFullDropOldest)
	}
	if so.SpoolDir == "" {
		return fmt.Errorf("audit: %s sink: no spool dir", so.Kind)
	}
	return nil
}

// deliverFunc hands a batch of spooled lines (canonical JSON events and
// audit.gap events, without their newlines) to the receiver. It returns
// nil only once the receiver has taken the whole batch; any error makes
// the sender retry the same batch after a backoff. ctx ends when the spool
// closes.
type deliverFunc func(ctx context.Context, lines [][]byte) error

// spool is a bounded on-disk queue of events for one sink, with the
// goroutine that delivers it. write appends canonical JSON lines to
// spool.jsonl and returns, so the sink never blocks on its receiver; the
// sender hands them in order to deliver, in batches, retrying a failed
// batch with exponential backoff, and saves the offset delivered so far in
// spool.offset after each success. Both files survive a restart. Delivery
// is at least once: a crash between a delivery and saving the offset
// delivers that batch again.
type spool struct {
	so      spoolOptions
	deliver deliverFunc

	mu       sync.Mutex
	file     *os.File
	size     int64 // bytes in the spool file
	off      int64 // bytes delivered
	inflight int64 // bytes from off the sender is delivering now; never dropped
	events   int64 // undelivered lines in [off, size)
	inflEvts int64 // lines in the in-flight bytes
	offF     string
	wake     chan struct{}
	closed   bool
	full     bool     // the spool filled up and has not drained to half since
	failGap  *gapInfo // events rejected under OnFullFail, reported by the next write
	dropped  uint64   // events discarded or rejected because the spool was full
	gaps     uint64   // audit.gap events written to the spool

	cancel context.CancelFunc // ends the sender's ctx
	quit   chan struct{}
	done   chan struct{}
}

// newSpool opens (or creates) the spool in so.SpoolDir, cuts a torn last line,
// and starts delivering what it holds.
func newSpool(so spoolOptions, deliver deliverFunc) (*spool, error) {
	if err := so.setDefaults(); err != nil {
		return nil, err
	}
	fail := func(err error) (*spool, error) {
		return nil, fmt.Errorf("audit: %s sink: spool: %w", so.Kind, err)
	}
	if err := os.MkdirAll(so.SpoolDir, 0o700); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(filepath.Join(so.SpoolDir, "spool.jsonl"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	size, _, err := completeLength(f) // a torn line was never acknowledged
	if err == nil {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return fail(err)
	}
	s := &spool{so: so, deliver: deliver, file: f, size: size, offF: filepath.Join(so.SpoolDir, "spool.offset"),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if b, err := os.ReadFile(s.offF); err == nil {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && n >= 0 && n <= size {
			s.off = n
		}
	}
	if s.events, err = countLines(f, s.off, s.size); err != nil {
		f.Close()
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

// write appends events to the spool as canonical JSON lines. When they do
// not fit, OnFull decides (see HTTPOptions.OnFull).
func (s *spool) write(events []Event) error {
	var buf []byte
	for i := range events {
		b, err := canonicalJSON(&events[i])
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("audit: %s sink is closed", s.so.Kind)
	}
	var gapLine []byte
	if s.failGap != nil {
		gapLine = s.failGap.line(s.so.Now)
	}
	need := int64(len(gapLine) + len(buf))
	if s.size+need > s.so.MaxSpoolBytes {
		if err := s.makeRoom(need, events); err != nil {
			return err
		}
	} else if s.full && s.size-s.off+need <= s.so.MaxSpoolBytes/2 {
		// Full until half drained, so that the alert does not flap.
		s.full = false
		s.so.Logger.Info("audit: "+s.so.Kind+" sink spool has room again", "sink", s.so.Name)
	}
	if gapLine != nil && s.failGap != nil {
		buf = append(gapLine, buf...)
	}
	if _, err := s.file.WriteAt(buf, s.size); err != nil {
		_ = s.file.Truncate(s.size)
		return fmt.Errorf("audit: %s sink: spool: %w", s.so.Kind, err)
	}
	if s.so.SpoolFsync {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("audit: %s sink: spool: %w", s.so.Kind, err)
		}
	}
	s.size += int64(len(buf))
	s.events += int64(len(events))
	if gapLine != nil && s.failGap != nil {
		s.events++
		s.gaps++
		s.failGap = nil
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// makeRoom frees need bytes: first by compacting away delivered bytes, then
// by OnFull. Caller holds s.mu.
func (s *spool) makeRoom(need int64, events []Event) error {
	if s.off > 0 {
		if err := s.compact(s.off+s.inflight, s.off+s.inflight, nil); err != nil {
			return err
		}
		if s.size+need <= s.so.MaxSpoolBytes {
			return nil
		}
	}
	if !s.full {
		s.full = true
		s.so.Logger.Error("audit: "+s.so.Kind+" sink spool full", "sink", s.so.Name, "spool_bytes", s.size,
			"max_spool_bytes", s.so.MaxSpoolBytes, "on_full", s.so.OnFull)
	}
	if s.so.OnFull == OnFullDropOldest {
		if err := s.dropOldest(need); err == nil {
			return nil
		} else if !errors.Is(err, errNoRoom) {
			return err
		}
	}
	// Reject: remember the events so the next write that fits reports them.
	if len(events) > 0 {
		if s.failGap == nil {
			s.failGap = &gapInfo{first: events[0].Seq}
		}
		s.failGap.dropped += uint64(len(events))
		s.failGap.fresh += uint64(len(events))
		s.failGap.last = events[len(events)-1].Seq
	}
	s.dropped += uint64(len(events))
	return fmt.Errorf("audit: %s sink %s: spool full (%d bytes, on_full %s)", s.so.Kind, s.so.Name, s.size, s.so.OnFull)
}

var errNoRoom = errors.New("audit: spool: batch larger than the droppable spool")

// dropOldest discards the oldest undelivered lines that are not in flight,
// enough to free need bytes plus MaxBytes/16 (so that a steady stream into
// a full spool does not rewrite it on every write), and puts one audit.gap
// event in their place. Caller holds s.mu.
func (s *spool) dropOldest(need int64) error {
	from := s.off + s.inflight
	// Bytes kept after compaction: in-flight + gap + [to, size).
	br := bufio.NewReader(io.NewSectionReader(s.file, from, s.size-from))
	to := from
	var g gapInfo
	var lines int64
	headroom := s.so.MaxSpoolBytes / 16
	for s.inflight+gapLineReserve+(s.size-to)+need > s.so.MaxSpoolBytes-headroom {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("audit: %s sink: spool: %w", s.so.Kind, err)
		}
		to += int64(len(line))
		lines++
		g.add(line)
	}
	if s.inflight+gapLineReserve+(s.size-to)+need > s.so.MaxSpoolBytes {
		return errNoRoom
	}
	if lines == 0 {
		return nil
	}
	gl := g.line(s.so.Now)
	if err := s.compact(from, to, gl); err != nil {
		return err
	}
	s.events -= lines - 1
	s.dropped += g.fresh
	s.gaps++
	s.so.Logger.Warn("audit: "+s.so.Kind+" sink spool full, dropped oldest events", "sink", s.so.Name,
		"dropped", g.fresh, "first_seq", g.first, "last_seq", g.last)
	return nil
}

// compact rewrites the spool as [off, from) + gap + [to, size), so that
// delivered bytes and the dropped range [from, to) are gone and the offset
// becomes 0. The new offset is saved before the rename: a crash in between
// delivers delivered events again (at least once) rather than skipping
// any. Caller holds s.mu.
func (s *spool) compact(from, to int64, gap []byte) error {
	path := s.file.Name()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %s sink: compact spool: %w", s.so.Kind, err)
	}
	_, err = io.Copy(f, io.NewSectionReader(s.file, s.off, from-s.off))
	if err == nil {
		_, err = f.Write(gap)
	}
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(s.file, to, s.size-to))
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.WriteFile(s.offF, []byte("0"), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("audit: %s sink: compact spool: %w", s.so.Kind, err)
	}
	s.file.Close()
	s.file = f
	s.size = (from - s.off) + int64(len(gap)) + (s.size - to)
	s.off = 0
	return nil
}

// close stops the sender (cancelling a delivery in progress); what is not
// delivered stays in the spool for the next start.
func (s *spool) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file.Close()
}

// pending returns the bytes spooled and not yet delivered.
func (s *spool) pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.off
}

// stats reports the spool for metrics.
func (s *spool) stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpoolStats{Bytes: s.size - s.off, Events: s.events, Full: s.full, DroppedEvents: s.dropped, GapEvents: s.gaps}
}

// run is the sender: it delivers the spool in order from the saved offset.
func (s *spool) run(ctx context.Context) {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		s.mu.Lock()
		if s.off == s.size {
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-s.wake:
				continue
			}
		}
		pending := s.size - s.off
		lines, n, err := s.readBatch(s.off, s.size)
		s.inflight, s.inflEvts = n, int64(len(lines))
		s.mu.Unlock()
		if err == nil {
			err = s.deliver(ctx, lines)
		}
		if err != nil {
			s.mu.Lock()
			s.inflight, s.inflEvts = 0, 0
			s.mu.Unlock()
			backoff = min(max(2*backoff, s.so.RetryMin), s.so.RetryMax)
			s.so.Logger.Warn("audit: "+s.so.Kind+" sink delivery failed, will retry", "sink", s.so.Name, "err", err,
				"pending_bytes", pending, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.quit:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		if err := s.advance(lines); err != nil {
			s.so.Logger.Error("audit: "+s.so.Kind+" sink spool offset", "sink", s.so.Name, "err", err)
		}
	}
}

// readBatch reads up to BatchEvents complete lines from off (and at most
// about a quarter of the spool bound, at least one line). Caller holds
// s.mu (compaction replaces the file).
func (s *spool) readBatch(off, size int64) ([][]byte, int64, error) {
	br := bufio.NewReader(io.NewSectionReader(s.file, off, size-off))
	var lines [][]byte
	var n int64
	// A batch in flight cannot be dropped: keep it to a quarter of the
	// spool so that drop_oldest always has room to work with.
	maxBytes := min(4<<20, s.so.MaxSpoolBytes/4)
	for len(lines) < s.so.BatchEvents && (n == 0 || n < maxBytes) {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("spool: %w", err)
		}
		n += int64(len(line))
		lines = append(lines, line[:len(line)-1])
	}
	return lines, n, nil
}

// advance records the in-flight bytes (the lines delivered) delivered,
// ends the full state once half the bound is free (as write does, so that
// a quiet sink's alert does not stay on) and empties a drained spool.
func (s *spool) advance(delivered [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off += s.inflight
	s.events -= s.inflEvts
	s.inflight, s.inflEvts = 0, 0
	if s.full && s.size-s.off <= s.so.MaxSpoolBytes/2 {
		s.full = false
		s.so.Logger.Info("audit: "+s.so.Kind+" sink spool has room again", "sink", s.so.Name)
	}
	if s.off == s.size {
		// The last event goes with the emptied spool: keep it to resume
		// the chain from (LastSpooledEvent).
		if l := lastChained(delivered); l != nil {
			if err := s.saveLast(l); err != nil {
				return err
			}
		}
		if err := s.file.Truncate(0); err != nil {
			return err
		}
		s.off, s.size = 0, 0
	}
	return os.WriteFile(s.offF, []byte(strconv.FormatInt(s.off, 10)), 0o600)
}
