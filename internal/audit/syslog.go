package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SyslogOptions configures a SyslogSink.
type SyslogOptions struct {
	// Network is "udp" (RFC 5426), "tcp" (RFC 6587 octet counting) or "tls"
	// (RFC 5425: octet counting over TLS).
	Network string
	Address string // host:port
	// TLSConfig is used for "tls"; nil means the system roots and Address's host.
	TLSConfig *tls.Config
	// Format of the MSG part: "json" (default; the canonical event) or "cef".
	Format string
	// Hostname and AppName fill the RFC 5424 header; defaults are
	// os.Hostname() and "stint".
	Hostname, AppName string
	// Facility defaults to 13 (log audit).
	Facility int
	// MaxMessage is the longest message sent, header included; defaults are
	// 2048 for udp (what RFC 5426 receivers must accept) and 8192 for tcp
	// and tls (rsyslog's default maxMessageSize). See truncate.
	MaxMessage int
	// Timeout bounds a dial and a write; 0 means 10s.
	Timeout time.Duration
	// Now is the clock for write deadlines and audit.gap events; nil means
	// time.Now.
	Now func() time.Time

	// SpoolDir, when set, puts an on-disk spool in front of the network, as
	// HTTPSink has: Write appends the events to it and returns, and a
	// sender goroutine sends them in order, retrying with backoff while the
	// collector is unreachable, from where it left off after a restart.
	// Without SpoolDir, Write sends and blocks until the bytes are handed
	// to the transport. The fields below mean what HTTPOptions' fields of
	// the same names mean and have the same defaults; they apply only with
	// a spool.
	SpoolOptions
	Logger *slog.Logger
}

// SyslogSink sends each event as one RFC 5424 message. Syslog has no
// acknowledgement: a message counts as delivered once its bytes were
// handed to the transport, not once the collector stored them, so make it
// a best-effort sink unless the network path is trusted. With a spool (see
// SyslogOptions.SpoolDir) a TCP or TLS connection the collector closed is
// noticed before the next batch is sent on it, and a batch whose send
// failed is sent again: delivery is at least once (deduplicate by id)
// except for bytes the kernel accepted just before the collector went
// away; over UDP a message is lost whenever the collector is down.
type SyslogSink struct {
	o     SyslogOptions
	spool *spool // nil: Write sends directly

	mu   sync.Mutex // guards conn
	conn net.Conn
}

// NewSyslogSink checks the options; it connects on the first Write.
func NewSyslogSink(o SyslogOptions) (*SyslogSink, error) {
	switch o.Network {
	case "udp":
		if o.MaxMessage == 0 {
			o.MaxMessage = 2048
		}
	case "tcp", "tls":
		if o.MaxMessage == 0 {
			o.MaxMessage = 8192
		}
	default:
		return nil, fmt.Errorf("audit: syslog sink: network %q is not udp, tcp or tls", o.Network)
	}
	if o.Address == "" {
		return nil, errors.New("audit: syslog sink: no address")
	}
	switch o.Format {
	case "":
		o.Format = "json"
	case "json", "cef":
	default:
		return nil, fmt.Errorf("audit: syslog sink: format %q is not json or cef", o.Format)
	}
	if o.MaxMessage < 512 {
		return nil, fmt.Errorf("audit: syslog sink: max message %d is below 512 bytes", o.MaxMessage)
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	o.Hostname = headerField(o.Hostname, 255)
	if o.AppName == "" {
		o.AppName = "stint"
	}
	o.AppName = headerField(o.AppName, 48)
	if o.Facility == 0 {
		o.Facility = 13
	}
	if o.Facility < 0 || o.Facility > 23 {
		return nil, fmt.Errorf("audit: syslog sink: facility %d out of range", o.Facility)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &SyslogSink{o: o}
	if o.SpoolDir == "" {
		return s, nil
	}
	sp, err := newSpool(spoolOptions{SpoolOptions: o.SpoolOptions, Logger: o.Logger, Now: o.Now,
		Kind: "syslog", Name: s.Name()}, s.deliver)
	if err != nil {
		return nil, err
	}
	s.spool = sp
	return s, nil
}

// Name returns "syslog:" and the address.
func (s *SyslogSink) Name() string { return "syslog:" + s.o.Network + "://" + s.o.Address }

// Write sends every event, redialling once on a broken connection; with a
// spool it appends them to the spool instead and returns (when they do not
// fit, OnFull decides). Either way an event that does not fit in
// MaxMessage even truncated fails the Write.
func (s *SyslogSink) Write(ctx context.Context, events []Event) error {
	msgs := make([][]byte, len(events))
	for i := range events {
		m, err := s.message(&events[i])
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	if s.spool != nil {
		return s.spool.write(events)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.send(ctx, msgs)
	if err != nil && s.conn == nil {
		err = s.send(ctx, msgs) // the connection was dropped: one fresh try
	}
	return err
}

// deliver sends a batch of spool lines, each rendered (and truncated) as
// one message; ctx ends when the sink closes. A stream connection the
// collector has closed since the last batch is dropped first, so the batch
// goes to a live collector or fails and is retried.
func (s *SyslogSink) deliver(ctx context.Context, lines [][]byte) error {
	msgs := make([][]byte, 0, len(lines))
	for _, l := range lines {
		e, err := parseLine(l)
		var m []byte
		if err == nil {
			m, err = s.message(e)
		}
		if err != nil {
			// Write checked every event; a line that fails here would
			// block the spool forever if it were retried.
			s.o.Logger.Error("audit: syslog sink: unsendable spool line skipped", "sink", s.Name(), "err", err)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.o.Network != "udp" && !s.alive() {
		s.conn.Close()
		s.conn = nil
	}
	return s.send(ctx, msgs)
}

// alive reports whether the collector has not closed the stream
// connection: it never sends anything, so a read that does not time out
// means EOF or an error. Without this check the first batch after a
// collector restart would be written into a connection the peer has
// already closed, and lost. Caller holds s.mu.
func (s *SyslogSink) alive() bool {
	_ = s.conn.SetReadDeadline(s.o.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := s.conn.Read(b[:])
	_ = s.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *SyslogSink) send(ctx context.Context, msgs [][]byte) error {
	if s.conn == nil {
		d := net.Dialer{Timeout: s.o.Timeout}
		var c net.Conn
		var err error
		if s.o.Network == "tls" {
			td := tls.Dialer{NetDialer: &d, Config: s.o.TLSConfig}
			c, err = td.DialContext(ctx, "tcp", s.o.Address)
		} else {
			c, err = d.DialContext(ctx, s.o.Network, s.o.Address)
		}
		if err != nil {
			return fmt.Errorf("audit: syslog sink %s: %w", s.Name(), err)
		}
		s.conn = c
	}
	_ = s.conn.SetWriteDeadline(s.o.Now().Add(s.o.Timeout))
	var err error
	if s.o.Network == "udp" {
		for _, m := range msgs {
			if _, err = s.conn.Write(m); err != nil {
				break
			}
		}
	} else {
		var buf bytes.Buffer
		for _, m := range msgs {
			buf.WriteString(strconv.Itoa(len(m)))
			buf.WriteByte(' ')
			buf.Write(m)
		}
		_, err = s.conn.Write(buf.Bytes())
	}
	if err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("audit: syslog sink %s: %w", s.Name(), err)
	}
	return nil
}

// Close stops the spool's sender, if any (what is not sent stays in the
// spool for the next start), and closes the connection.
func (s *SyslogSink) Close() error {
	var serr error
	if s.spool != nil {
		serr = s.spool.close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return serr
	}
	err := s.conn.Close()
	s.conn = nil
	return errors.Join(serr, err)
}

// SpoolStats reports the spool for metrics; a sink without a spool reports
// zeros (and Spooled is false, so no spool metrics are exported for it).
func (s *SyslogSink) SpoolStats() SpoolStats {
	if s.spool == nil {
		return SpoolStats{}
	}
	return s.spool.stats()
}

// Spooled reports whether the sink has an on-disk spool.
func (s *SyslogSink) Spooled() bool { return s.spool != nil }

// Pending returns the bytes spooled and not yet sent (0 without a spool).
func (s *SyslogSink) Pending() int64 {
	if s.spool == nil {
		return 0
	}
	return s.spool.pending()
}

// message renders one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - MSG
//
// PRI is facility*8 + severity (6 info for success, 4 warning otherwise),
// MSGID is the event type, and MSG the payload, truncated to fit MaxMessage.
func (s *SyslogSink) message(e *Event) ([]byte, error) {
	sev := 6
	if e.Outcome != OutcomeSuccess {
		sev = 4
	}
	header := fmt.Sprintf("<%d>1 %s %s %s - %s - ", s.o.Facility*8+sev,
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), s.o.Hostname, s.o.AppName, headerField(e.Type, 32))
	room := s.o.MaxMessage - len(header)
	var payload []byte
	var err error
	if s.o.Format == "cef" {
		payload, err = fitCEF(e, room)
	} else {
		payload, err = fitJSON(e, room)
	}
	if err != nil {
		return nil, err
	}
	return append([]byte(header), payload...), nil
}

// fitJSON returns the canonical event if it fits in room bytes. Otherwise it
// truncates in a verifiable way: Details, then Reason, Error and actor
// attributes are dropped and "truncated":true is added; seq, id, hash and
// prev_hash are kept, so the full event can be found in the primary record
// and checked there. Only a truncated message carries the "truncated" key.
func fitJSON(e *Event, room int) ([]byte, error) {
	b, err := canonicalJSON(e)
	if err != nil || len(b) <= room {
		return b, err
	}
	c := *e
	steps := []func(){
		func() { c.Details = nil },
		func() { c.Reason, c.Error = "", "" },
		func() {
			c.Principal, c.Human = stripActor(c.Principal), stripActor(c.Human)
		},
		func() {
			c = Event{Seq: e.Seq, Time: e.Time, ID: e.ID, PrevHash: e.PrevHash, Hash: e.Hash,
				Type: e.Type, RequestID: e.RequestID, Outcome: e.Outcome}
		},
	}
	for _, step := range steps {
		step()
		b, err := canonicalJSON(&c)
		if err != nil {
			return nil, err
		}
		b = append(b[:len(b)-1], `,"truncated":true}`...)
		if len(b) <= room {
			return b, nil
		}
	}
	return nil, fmt.Errorf("audit: syslog sink: event seq %d does not fit in %d bytes even when truncated", e.Seq, room)
}

func stripActor(a *Actor) *Actor {
	if a == nil {
		return nil
	}
	return &Actor{Provider: a.Provider, Kind: a.Kind, Subject: a.Subject, TokenID: a.TokenID}
}

// fitCEF renders ArcSight CEF:
//
//	CEF:0|stint|stint|1|<type>|<type>|<severity>|<extensions>
//
// with extensions rt, externalId (event id), act (type), outcome, suser,
// duser (human), src (source), reason, request, and custom strings
// cs1=seq cs2=hash cs3=prev_hash cs4=target cs5=role cs6=lease_id, and msg
// holding the details as JSON. When too long, msg is dropped first and then
// reason, and "cn1Label=truncated cn1=1" is added.
func fitCEF(e *Event, room int) ([]byte, error) {
	sev := "3"
	if e.Outcome != OutcomeSuccess {
		sev = "6"
	}
	head := "CEF:0|stint|stint|1|" + cefHeader(e.Type) + "|" + cefHeader(e.Type) + "|" + sev + "|"
	details := ""
	if len(e.Details) > 0 {
		d, err := json.Marshal(e.Details)
		if err != nil {
			return nil, fmt.Errorf("audit: cef: %w", err)
		}
		details = string(d)
	}
	reason := e.Reason
	if e.Error != "" {
		reason = strings.TrimSpace(reason + " " + e.Error)
	}
	build := func(truncated bool) string {
		var x []string
		add := func(k, v string) {
			if v != "" {
				x = append(x, k+"="+cefValue(v))
			}
		}
		add("rt", strconv.FormatInt(e.Time.UnixMilli(), 10))
		add("externalId", e.ID)
		add("act", e.Type)
		add("outcome", e.Outcome)
		if e.Principal != nil {
			add("suser", e.Principal.Subject)
		}
		if e.Human != nil {
			add("duser", e.Human.Subject)
		}
		add("src", hostOnly(e.Source))
		add("request", e.RequestID)
		for i, kv := range [][2]string{{"seq", strconv.FormatUint(e.Seq, 10)}, {"hash", e.Hash}, {"prev_hash", e.PrevHash},
			{"target", e.Target}, {"role", e.Role}, {"lease_id", e.LeaseID}} {
			if kv[1] != "" {
				n := strconv.Itoa(i + 1)
				add("cs"+n+"Label", kv[0])
				add("cs"+n, kv[1])
			}
		}
		add("reason", reason)
		add("msg", details)
		if truncated {
			add("cn1Label", "truncated")
			add("cn1", "1")
		}
		return strings.Join(x, " ")
	}
	if s := head + build(false); len(s) <= room {
		return []byte(s), nil
	}
	details = ""
	if s := head + build(true); len(s) <= room {
		return []byte(s), nil
	}
	reason = ""
	if s := head + build(true); len(s) <= room {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("audit: syslog sink: event seq %d does not fit in %d bytes as cef even when truncated", e.Seq, room)
}

// cefHeader escapes a CEF header field.
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", " ", "\r", " ").Replace(s)
}

// cefValue escapes a CEF extension value.
func cefValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`).Replace(s)
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most n bytes, "-" when empty.
func headerField(s string, n int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

var _ Sink = (*SyslogSink)(nil)
