package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
	// SpoolOptions: SpoolDir is required.
	SpoolOptions
	Logger *slog.Logger
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
	*spool
	o      HTTPOptions
	client *http.Client
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
	s := &HTTPSink{o: o, client: o.Client}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	sp, err := newSpool(spoolOptions{SpoolOptions: o.SpoolOptions, Logger: o.Logger, Now: o.Now,
		Kind: "http", Name: s.Name()}, s.post)
	if err != nil {
		return nil, err
	}
	s.spool = sp
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
func (s *HTTPSink) Write(_ context.Context, events []Event) error { return s.write(events) }

// Close stops the sender after its current attempt; what is not delivered
// stays in the spool for the next start.
func (s *HTTPSink) Close() error { return s.close() }

// Pending returns the bytes spooled and not yet delivered.
func (s *HTTPSink) Pending() int64 { return s.pending() }

// SpoolStats reports the spool for metrics.
func (s *HTTPSink) SpoolStats() SpoolStats { return s.stats() }

// post sends one batch of spooled lines; ctx ends when the sink closes.
func (s *HTTPSink) post(ctx context.Context, lines [][]byte) error {
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
