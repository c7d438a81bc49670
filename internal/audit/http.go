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
	// MaxSpoolBytes bounds the spool; when full, Write fails (the Log logs
	// and counts it). 0 means 256 MiB.
	MaxSpoolBytes int64
	// SpoolFsync fsyncs the spool on every Write, so events survive a power
	// loss and not only a process crash.
	SpoolFsync bool
	// BatchEvents bounds the events per POST; 0 means 500.
	BatchEvents int
	// RetryMin and RetryMax bound the exponential backoff between failed
	// POSTs; 0 means 1s and 1m.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
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

	mu     sync.Mutex
	spool  *os.File
	size   int64 // bytes in the spool
	off    int64 // bytes delivered
	offF   string
	wake   chan struct{}
	closed bool

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
	go s.run()
	return s, nil
}

// Name returns "http:" and the URL.
func (s *HTTPSink) Name() string { return "http:" + s.o.URL }

// Write appends events to the spool and returns; the sender posts them.
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
	if s.size+int64(len(buf)) > s.o.MaxSpoolBytes {
		return fmt.Errorf("audit: http sink %s: spool full (%d bytes)", s.Name(), s.size)
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
	select {
	case s.wake <- struct{}{}:
	default:
	}
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

func (s *HTTPSink) run() {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		s.mu.Lock()
		off, size := s.off, s.size
		s.mu.Unlock()
		if off == size {
			select {
			case <-s.quit:
				return
			case <-s.wake:
				continue
			}
		}
		lines, n, err := s.readBatch(off, size)
		if err == nil {
			err = s.post(lines)
		}
		if err != nil {
			backoff = min(max(2*backoff, s.o.RetryMin), s.o.RetryMax)
			s.o.Logger.Warn("audit: http sink delivery failed, will retry", "sink", s.Name(), "err", err,
				"pending_bytes", size-off, "retry_in", backoff)
			select {
			case <-s.quit:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if err := s.advance(n); err != nil {
			s.o.Logger.Error("audit: http sink spool offset", "sink", s.Name(), "err", err)
		}
	}
}

// readBatch reads up to BatchEvents complete lines from off.
func (s *HTTPSink) readBatch(off, size int64) ([][]byte, int64, error) {
	br := bufio.NewReader(io.NewSectionReader(s.spool, off, size-off))
	var lines [][]byte
	var n int64
	for len(lines) < s.o.BatchEvents && n < 4<<20 {
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

// advance records n more bytes delivered and empties a drained spool.
func (s *HTTPSink) advance(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off += n
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
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

var _ Sink = (*HTTPSink)(nil)
