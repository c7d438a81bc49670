package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// HTTPOptions configures an HTTPSink.
type HTTPOptions struct {
	URL string
	// Format of a POST body: "json" (an array of events, the default),
	// "ndjson" (one event per line) or "splunk-hec" (concatenated HEC event
	// objects {"time":…,"sourcetype":"stint:audit","event":{…}}).
	Format string
	// Token is sent as "Authorization: Splunk <token>" for splunk-hec and
	// "Authorization: Bearer <token>" otherwise; empty sends none. It is never
	// logged. The caller reads it from a file or the environment.
	Token string
	// Client sends the requests; nil means a client with a 30s timeout.
	Client *http.Client
	// SpoolDir holds the on-disk spool (created 0700). Required.
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
	// BatchEvents bounds the events per POST; 0 means 500.
	BatchEvents int
	// RetryMin and RetryMax bound the exponential backoff between failed
	// POSTs; 0 means 1s and 1m.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// Now stamps audit.gap events; nil means time.Now.
	Now func() time.Time
}

// HTTPSink delivers events to an HTTP collector in batched POSTs. Write only
// appends to a local spool, so the sink never blocks the Log while the
// receiver is down; a sender goroutine posts the spool in order and retries
// a failed POST (any error or non-2xx status) with backoff until it
// succeeds. The spool and the offset sent so far survive a restart. Delivery
// is at least once: a crash between a successful POST and saving the offset
// resends that batch, so receivers deduplicate by event id.
type HTTPSink struct {
	o      HTTPOptions
	client *http.Client

	mu       sync.Mutex
	spool    *os.File
	size     int64 // bytes in the spool file
	off      int64 // bytes delivered
	inflight int64 // bytes from off the sender is posting now; never dropped
	events   int64 // undelivered lines in [off, size)
	inflEvts int64 // lines in the in-flight bytes
	offF     string
	wake     chan struct{}
	closed   bool
	full     bool     // the spool filled up and has not drained to half since
	failGap  *gapInfo // events rejected under OnFullFail, reported by the next Write
	dropped  uint64   // events discarded or rejected because the spool was full
	gaps     uint64   // audit.gap events written to the spool

	quit chan struct{}
	done chan struct{}
}

// NewHTTPSink opens the spool in o.SpoolDir and starts sending what it holds.
func NewHTTPSink(o HTTPOptions) (*HTTPSink, error) {
	switch o.Format {
	case "":
		o.Format = "json"
	case "json", "ndjson", "splunk-hec":
	default:
		return nil, fmt.Errorf("audit: http sink: format %q is not json, ndjson or splunk-hec", o.Format)
	}
	if o.URL == "" || o.SpoolDir == "" {
		return nil, errors.New("audit: http sink: url and spool dir are required")
	}
	if o.MaxSpoolBytes <= 0 {
		o.MaxSpoolBytes = 256 << 20
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 500
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(time.Minute, o.RetryMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.OnFull {
	case "":
		o.OnFull = OnFullFail
	case OnFullFail, OnFullDropOldest:
	default:
		return nil, fmt.Errorf("audit: http sink: on_full %q is not %s or %s", o.OnFull, OnFullFail, OnFullDropOldest)
	}
	s := &HTTPSink{o: o, client: o.Client, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: http sink: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(o.SpoolDir, "spool.jsonl"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: http sink: %w", err)
	}
	size, _, err := completeLength(f) // a torn line was never acknowledged
	if err == nil {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: http sink: spool: %w", err)
	}
	s.spool, s.size = f, size
	s.offF = filepath.Join(o.SpoolDir, "spool.offset")
	if b, err := os.ReadFile(s.offF); err == nil {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && n >= 0 && n <= size {
			s.off = n
		}
	}
	if s.events, err = countLines(f, s.off, s.size); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: http sink: spool: %w", err)
	}
	go s.run()
	return s, nil
}

// Name returns "http:" and the URL without its query and user info, which
// may hold credentials (e.g. an API key parameter).
func (s *HTTPSink) Name() string {
	u, err := url.Parse(s.o.URL)
	if err != nil {
		return "http:(invalid url)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return "http:" + u.String()
}

// Write appends events to the spool and returns; the sender posts them.
// When they do not fit, OnFull decides (see HTTPOptions.OnFull).
func (s *HTTPSink) Write(_ context.Context, events []Event) error {
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
		return errors.New("audit: http sink is closed")
	}
	var gapLine []byte
	if s.failGap != nil {
		gapLine = s.failGap.line(s.o.Now)
	}
	need := int64(len(gapLine) + len(buf))
	if s.size+need > s.o.MaxSpoolBytes {
		if err := s.makeRoom(need, events); err != nil {
			return err
		}
	} else if s.full && s.size-s.off+need <= s.o.MaxSpoolBytes/2 {
		// Full until half drained, so that the alert does not flap.
		s.full = false
		s.o.Logger.Info("audit: http sink spool has room again", "sink", s.Name())
	}
	if gapLine != nil && s.failGap != nil {
		buf = append(gapLine, buf...)
	}
	if _, err := s.spool.WriteAt(buf, s.size); err != nil {
		_ = s.spool.Truncate(s.size)
		return fmt.Errorf("audit: http sink: spool: %w", err)
	}
	if s.o.SpoolFsync {
		if err := s.spool.Sync(); err != nil {
			return fmt.Errorf("audit: http sink: spool: %w", err)
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
func (s *HTTPSink) makeRoom(need int64, events []Event) error {
	if s.off > 0 {
		if err := s.compact(s.off+s.inflight, s.off+s.inflight, nil); err != nil {
			return err
		}
		if s.size+need <= s.o.MaxSpoolBytes {
			return nil
		}
	}
	if !s.full {
		s.full = true
		s.o.Logger.Error("audit: http sink spool full", "sink", s.Name(), "spool_bytes", s.size,
			"max_spool_bytes", s.o.MaxSpoolBytes, "on_full", s.o.OnFull)
	}
	if s.o.OnFull == OnFullDropOldest {
		if err := s.dropOldest(need); err == nil {
			return nil
		} else if !errors.Is(err, errNoRoom) {
			return err
		}
	}
	// Reject: remember the events so the next Write that fits reports them.
	if len(events) > 0 {
		if s.failGap == nil {
			s.failGap = &gapInfo{first: events[0].Seq}
		}
		s.failGap.dropped += uint64(len(events))
		s.failGap.fresh += uint64(len(events))
		s.failGap.last = events[len(events)-1].Seq
	}
	s.dropped += uint64(len(events))
	return fmt.Errorf("audit: http sink %s: spool full (%d bytes, on_full %s)", s.Name(), s.size, s.o.OnFull)
}

var errNoRoom = errors.New("audit: http sink: batch larger than the droppable spool")

// dropOldest discards the oldest undelivered lines that are not in flight,
// enough to free need bytes plus MaxSpoolBytes/16 (so that a steady stream
// into a full spool does not rewrite it on every Write), and puts one
// audit.gap event in their place. Caller holds s.mu.
func (s *HTTPSink) dropOldest(need int64) error {
	from := s.off + s.inflight
	// Bytes kept after compaction: in-flight + gap + [to, size).
	br := bufio.NewReader(io.NewSectionReader(s.spool, from, s.size-from))
	to := from
	var g gapInfo
	var lines int64
	headroom := s.o.MaxSpoolBytes / 16
	for s.inflight+gapLineReserve+(s.size-to)+need > s.o.MaxSpoolBytes-headroom {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("audit: http sink: spool: %w", err)
		}
		to += int64(len(line))
		lines++
		g.add(line)
	}
	if s.inflight+gapLineReserve+(s.size-to)+need > s.o.MaxSpoolBytes {
		return errNoRoom
	}
	if lines == 0 {
		return nil
	}
	gl := g.line(s.o.Now)
	if err := s.compact(from, to, gl); err != nil {
		return err
	}
	s.events -= lines - 1
	s.dropped += g.fresh
	s.gaps++
	s.o.Logger.Warn("audit: http sink spool full, dropped oldest events", "sink", s.Name(),
		"dropped", g.fresh, "first_seq", g.first, "last_seq", g.last)
	return nil
}

// compact rewrites the spool as [off, from) + gap + [to, size), so that
// delivered bytes and the dropped range [from, to) are gone and the offset
// becomes 0. The new offset is saved before the rename: a crash in between
// resends delivered events (at least once) rather than skipping any.
// Caller holds s.mu.
func (s *HTTPSink) compact(from, to int64, gap []byte) error {
	path := s.spool.Name()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: http sink: compact spool: %w", err)
	}
	_, err = io.Copy(f, io.NewSectionReader(s.spool, s.off, from-s.off))
	if err == nil {
		_, err = f.Write(gap)
	}
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(s.spool, to, s.size-to))
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
		return fmt.Errorf("audit: http sink: compact spool: %w", err)
	}
	s.spool.Close()
	s.spool = f
	s.size = (from - s.off) + int64(len(gap)) + (s.size - to)
	s.off = 0
	return nil
}

// Close stops the sender after its current attempt; what is not delivered
// stays in the spool for the next start.
func (s *HTTPSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spool.Close()
}

// Pending returns the bytes spooled and not yet delivered.
func (s *HTTPSink) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.off
}

// SpoolStats reports the spool for metrics.
func (s *HTTPSink) SpoolStats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpoolStats{Bytes: s.size - s.off, Events: s.events, Full: s.full, DroppedEvents: s.dropped, GapEvents: s.gaps}
}

func (s *HTTPSink) run() {
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
			err = s.post(lines)
		}
		if err != nil {
			s.mu.Lock()
			s.inflight, s.inflEvts = 0, 0
			s.mu.Unlock()
			backoff = min(max(2*backoff, s.o.RetryMin), s.o.RetryMax)
			s.o.Logger.Warn("audit: http sink delivery failed, will retry", "sink", s.Name(), "err", err,
				"pending_bytes", pending, "retry_in", backoff)
			select {
			case <-s.quit:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if err := s.advance(); err != nil {
			s.o.Logger.Error("audit: http sink spool offset", "sink", s.Name(), "err", err)
		}
	}
}

// readBatch reads up to BatchEvents complete lines from off (and at most
// about a quarter of the spool bound, at least one line). Caller holds
// s.mu (compaction replaces the file).
func (s *HTTPSink) readBatch(off, size int64) ([][]byte, int64, error) {
	br := bufio.NewReader(io.NewSectionReader(s.spool, off, size-off))
	var lines [][]byte
	var n int64
	// A batch in flight cannot be dropped: keep it to a quarter of the
	// spool so that drop_oldest always has room to work with.
	maxBytes := min(4<<20, s.o.MaxSpoolBytes/4)
	for len(lines) < s.o.BatchEvents && (n == 0 || n < maxBytes) {
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

// advance records the in-flight bytes delivered and empties a drained spool.
func (s *HTTPSink) advance() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off += s.inflight
	s.events -= s.inflEvts
	s.inflight, s.inflEvts = 0, 0
	if s.off == s.size {
		if err := s.spool.Truncate(0); err != nil {
			return err
		}
		s.off, s.size = 0, 0
	}
	return os.WriteFile(s.offF, []byte(strconv.FormatInt(s.off, 10)), 0o600)
}

func (s *HTTPSink) post(lines [][]byte) error {
	var body bytes.Buffer
	ctype := "application/json"
	switch s.o.Format {
	case "json":
		body.WriteByte('[')
		body.Write(bytes.Join(lines, []byte(",")))
		body.WriteByte(']')
	case "ndjson":
		ctype = "application/x-ndjson"
		for _, l := range lines {
			body.Write(l)
			body.WriteByte('\n')
		}
	case "splunk-hec":
		for _, l := range lines {
			var t struct{ Time time.Time }
			if err := json.Unmarshal(l, &t); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			fmt.Fprintf(&body, `{"time":%d.%03d,"sourcetype":"stint:audit","event":%s}`,
				t.Time.Unix(), t.Time.Nanosecond()/1e6, l)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.URL, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if s.o.Token != "" {
		if s.o.Format == "splunk-hec" {
			req.Header.Set("Authorization", "Splunk "+s.o.Token)
		} else {
			req.Header.Set("Authorization", "Bearer "+s.o.Token)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

var _ Sink = (*HTTPSink)(nil)

// redactURLError drops the query and user info from the URL a transport
// error names: collectors take API keys there (dd-api-key=…), and the
// error is logged on every retry.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return fmt.Errorf("audit: http sink: %s: %w", ue.Op, ue.Err)
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
}
