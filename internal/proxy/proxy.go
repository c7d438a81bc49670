// Package proxy is stint's credential-injecting gateway: a reverse proxy
// for http targets. For each request it verifies the caller, matches the
// method and path to a role of the target, asks policy about this very
// request (method, path, selected headers, the JSON body), applies rate
// and concurrency limits, adds the upstream credential on the way out, and
// audits what was done — never the credential, the bodies or the token.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/policy"
)

// Broker is what the proxy needs of the broker (*broker.Broker).
type Broker interface {
	Authenticate(ctx context.Context, m broker.Meta, token string) (core.Principal, *core.Principal, error)
	Authorize(m broker.Meta, id core.Principal, human *core.Principal, g core.Grant, request map[string]any) (policy.Decision, audit.Event, error)
	Record(ctx context.Context, events ...audit.Event) error
	Actor(p *core.Principal) *audit.Actor
}

// Target is one http target as the proxy serves it.
type Target struct {
	Name string
	// URL is the upstream base; requests go to its scheme and host only.
	URL *url.URL
	// AuthHeader carries AuthFormat with KeyPlaceholder replaced by the credential.
	AuthHeader string
	AuthFormat string
	Credential Source
	Routes     []Route
	// PerPrincipal applies to each principal on this target; PerUpstream
	// to all principals together.
	PerPrincipal, PerUpstream Limit
	// BodyMaxBytes is the largest JSON body shown to policy (0: none).
	BodyMaxBytes int64
	// PolicyHeaders are shown to policy as request.headers (lower-cased).
	PolicyHeaders []string
	// StripHeaders are never forwarded upstream.
	StripHeaders []string
	// AllowCookies forwards Cookie headers (otherwise dropped).
	AllowCookies bool
	// StripResponseHeaders are never passed back to the caller.
	StripResponseHeaders []string
	// Timeout bounds one request, streaming included (0: 5 m).
	Timeout time.Duration
}

// KeyPlaceholder is replaced by the credential in AuthFormat.
const KeyPlaceholder = "{{.Key}}"

// Options wires the proxy.
type Options struct {
	Broker  Broker
	Targets []Target
	// Transport sends upstream requests (default: a pooled transport that
	// ignores proxy environment variables).
	Transport http.RoundTripper
	Now       func() time.Time
	Logger    *slog.Logger
}

// Handler serves /proxy/{target}/{path...}. It is safe for concurrent use.
type Handler struct {
	b       Broker
	targets map[string]*target
	now     func() time.Time
	log     *slog.Logger

	// Audit events are written after the response, off the latency path;
	// pending tracks them for Close, and auditDown makes new requests fail
	// closed while the audit record is failing.
	pending   sync.WaitGroup
	slots     chan struct{}
	auditDown atomic.Bool
}

type target struct {
	Target
	router *router
	rp     *httputil.ReverseProxy
	perP   *limiter
	perU   *limiter
	strip  []string
	policy []string // canonical names
}

// New checks the targets and builds the handler.
func New(o Options) (*Handler, error) {
	if o.Broker == nil {
		return nil, errors.New("proxy: a broker is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	h := &Handler{b: o.Broker, targets: map[string]*target{}, now: o.Now, log: o.Logger, slots: make(chan struct{}, 1024)}
	for _, t := range o.Targets {
		if t.URL == nil || t.URL.Host == "" || (t.URL.Scheme != "http" && t.URL.Scheme != "https") {
			return nil, fmt.Errorf("proxy: target %s: want an absolute http(s) URL", t.Name)
		}
		if t.Credential == nil || t.AuthHeader == "" || strings.Count(t.AuthFormat, KeyPlaceholder) != 1 {
			return nil, fmt.Errorf("proxy: target %s: a credential source, auth header and format with %s are required", t.Name, KeyPlaceholder)
		}
		if _, dup := h.targets[t.Name]; dup {
			return nil, fmt.Errorf("proxy: duplicate target %s", t.Name)
		}
		rt, err := newRouter(t.Routes)
		if err != nil {
			return nil, fmt.Errorf("proxy: target %s: %w", t.Name, err)
		}
		if t.Timeout <= 0 {
			t.Timeout = 5 * time.Minute
		}
		tt := &target{Target: t, router: rt, perP: newLimiter(t.PerPrincipal, o.Now), perU: newLimiter(t.PerUpstream, o.Now)}
		tt.strip = append([]string{"Authorization", "Proxy-Authorization", "Forwarded", "X-Forwarded-For",
			"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", t.AuthHeader}, t.StripHeaders...)
		if !t.AllowCookies {
			tt.strip = append(tt.strip, "Cookie")
		}
		for _, n := range t.PolicyHeaders {
			tt.policy = append(tt.policy, textproto.CanonicalMIMEHeaderKey(n))
		}
		tt.rp = &httputil.ReverseProxy{
			Rewrite:        tt.rewrite,
			Transport:      o.Transport,
			ModifyResponse: tt.modifyResponse,
			ErrorHandler:   tt.upstreamError,
			ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
			BufferPool:     copyBuffers,
		}
		h.targets[t.Name] = tt
	}
	return h, nil
}

// NewTransport is the default upstream transport: pooled keep-alive
// connections, no proxy from the environment (the upstream is the
// configured host and nothing else), bounded dial and TLS handshake.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// copyBuffers lends ReverseProxy its response copy buffers: without a
// pool it allocates 32 KiB per request, most of the proxy's garbage.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.p.Put(&buf)
	}
}

// Routes are the patterns to mount on a mux (server.Options.Extra).
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{"/proxy/{target}/{path...}": h, "/proxy/{target}": h}
}

// Close waits for pending audit writes.
func (h *Handler) Close() { h.pending.Wait() }

// call is one request's state, carried to the ReverseProxy callbacks in
// the request context.
type call struct {
	path, rawPath, rawQuery string
	credential              string
	status                  int
	upstreamErr             error
	in                      *countingReader
}

type callKey struct{}

// ServeHTTP runs the flow for one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // latency and deadlines are wall-clock, not the injected clock
	m := meta(r)
	// Only origin-form request targets: an absolute URI or "*" would name
	// a host of the caller's choosing.
	if !strings.HasPrefix(r.RequestURI, "/") {
		writeError(w, http.StatusBadRequest, "invalid_request", "only origin-form request URIs are accepted")
		return
	}
	id, human, err := h.authenticate(r, m)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stint"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "invalid identity token")
		return
	}
	deny := func(t, role string, status int, code, public, reason string, events ...audit.Event) {
		if len(events) == 0 {
			events = []audit.Event{{Type: audit.PolicyDeny, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeDenied,
				Principal: h.b.Actor(&id), Human: h.b.Actor(human), Target: t, Role: role, Reason: reason}}
		}
		h.record(events...)
		writeError(w, status, code, public)
	}
	if h.auditDown.Load() {
		deny(r.PathValue("target"), "", http.StatusServiceUnavailable, "temporarily_unavailable", "audit record unavailable", "audit record failing")
		return
	}
	name := r.PathValue("target")
	t := h.targets[name]
	if t == nil {
		deny(name, "", http.StatusNotFound, "not_found", "no http target named "+strconv.Quote(name), "unknown http target")
		return
	}
	rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	rest, ok := strings.CutPrefix(rawPath, "/proxy/"+name)
	if !ok || (rest != "" && rest[0] != '/') {
		deny(name, "", http.StatusBadRequest, "invalid_request", "the target name must not be escaped", "escaped target name")
		return
	}
	path, err := CleanPath(rest)
	if err != nil {
		deny(name, "", http.StatusBadRequest, "invalid_request", "path rejected: "+strings.TrimPrefix(err.Error(), ErrBadPath.Error()+": "), err.Error())
		return
	}
	roles := t.router.match(r.Method, path)
	if len(roles) == 0 {
		deny(name, "", http.StatusForbidden, "access_denied", fmt.Sprintf("no role of %s allows %s %s", name, r.Method, path), "no role matches method and path")
		return
	}

	// The request as policy sees it; the body only when it is JSON and
	// small enough, and then the exact bytes read are sent on.
	req := map[string]any{"method": r.Method, "path": path, "headers": t.headers(r.Header)}
	body, err := t.policyBody(r, req)
	if err != nil {
		deny(name, "", http.StatusBadRequest, "invalid_request", "could not read the request body", err.Error())
		return
	}
	var dec policy.Decision
	var polEv audit.Event
	var role string
	for _, ro := range roles {
		dec, polEv, err = h.b.Authorize(m, id, human, core.Grant{Target: name, Role: ro}, req)
		if err == nil {
			role = ro
			break
		}
	}
	if role == "" {
		public := "policy denied the request"
		var ce *core.Error
		if errors.As(err, &ce) {
			public = ce.Public
		}
		deny(name, polEv.Role, http.StatusForbidden, "access_denied", public, "", polEv)
		return
	}

	use := audit.Event{Type: audit.CredentialUse, RequestID: m.RequestID, Source: m.Source, Principal: h.b.Actor(&id),
		Human: h.b.Actor(human), Target: name, Role: role, Rule: dec.Rule,
		Details: map[string]any{"method": r.Method, "path": path, "upstream": t.URL.Host, "credential": t.Credential.Kind()}}
	finish := func(status int, outcome, reason string, in, out int64) {
		use.Outcome, use.Reason = outcome, reason
		use.Details["status"], use.Details["bytes_in"], use.Details["bytes_out"] = status, in, out
		use.Details["latency_ms"] = float64(time.Since(start).Microseconds()) / 1000
		h.record(polEv, use)
	}

	relP, retry, which := t.perP.acquire(id.Provider + "\x00" + id.Subject)
	var relU func(bool)
	if relP != nil {
		if relU, retry, which = t.perU.acquire(""); relU == nil {
			relP(true)
			which = "per-upstream " + which
		}
	} else {
		which = "per-principal " + which
	}
	if relP == nil || relU == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(retry.Seconds())))))
		writeError(w, http.StatusTooManyRequests, "rate_limited", "rate limit reached ("+which+")")
		use.Outcome = audit.OutcomeDenied
		finish(http.StatusTooManyRequests, audit.OutcomeDenied, "limit: "+which, 0, 0)
		return
	}
	defer relU(false)
	defer relP(false)

	ctx, cancel := context.WithTimeout(r.Context(), t.Timeout)
	defer cancel()
	cred, err := t.Credential.Credential(ctx, id, human)
	if err != nil {
		h.log.Warn("proxy: upstream credential unavailable", "target", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "upstream credential unavailable")
		use.Error = err.Error()
		finish(http.StatusServiceUnavailable, audit.OutcomeFailure, "credential unavailable", 0, 0)
		return
	}

	// Streams may outlive the server's write timeout; the target's own
	// timeout bounds them instead.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(start.Add(t.Timeout + 5*time.Second))
	_ = rc.SetReadDeadline(start.Add(t.Timeout + 5*time.Second))

	c := &call{path: path, rawPath: rest, rawQuery: rawQuery, credential: cred, in: &countingReader{r: body}}
	out := r.WithContext(context.WithValue(ctx, callKey{}, c))
	out.Body = c.in
	if body == http.NoBody {
		out.Body = http.NoBody
	}
	// No protocol switches: an upgraded connection would escape policy,
	// limits and accounting. (ReverseProxy clones the headers it sends, so
	// a copy is made here only when there is something to remove.)
	if _, up := r.Header["Upgrade"]; up || r.Header["Connection"] != nil {
		out.Header = r.Header.Clone()
		out.Header.Del("Upgrade")
		out.Header.Del("Connection")
	}
	cw := &countingWriter{ResponseWriter: w}
	t.rp.ServeHTTP(cw, out)

	status, outcome := cw.code(), audit.OutcomeSuccess
	if c.upstreamErr != nil {
		outcome, use.Error = audit.OutcomeFailure, c.upstreamErr.Error()
	}
	finish(status, outcome, "", c.in.n.Load(), cw.n)
}

// authenticate takes the bearer token, or on a Unix socket without one
// the kernel-reported peer credentials. The broker's identity cache
// (server.verified_token_cache) spares a repeated token its signature check.
func (h *Handler) authenticate(r *http.Request, m broker.Meta) (core.Principal, *core.Principal, error) {
	tok, hasTok := bearer(r.Header.Get("Authorization"))
	if !hasTok {
		if p, ok := r.Context().Value(peerKey{}).(Peer); ok {
			return p.principal(), nil, nil
		}
	}
	return h.b.Authenticate(r.Context(), m, tok)
}

// record writes events after the response, bounded in number pending;
// when too many are, the request waits (back-pressure on the audit sink).
func (h *Handler) record(events ...audit.Event) {
	h.pending.Add(1)
	write := func() {
		defer h.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.b.Record(ctx, events...); err != nil {
			if !h.auditDown.Swap(true) {
				h.log.Error("proxy: audit record failed; refusing requests until it recovers", "err", err)
			}
			return
		}
		h.auditDown.Store(false)
	}
	select {
	case h.slots <- struct{}{}:
		go func() {
			defer func() { <-h.slots }()
			write()
		}()
	default:
		write()
	}
}

// headers picks the configured headers for policy, by lower-cased name.
func (t *target) headers(hdr http.Header) map[string]any {
	out := make(map[string]any, len(t.policy))
	for _, n := range t.policy {
		if v := hdr.Values(n); len(v) > 0 {
			out[strings.ToLower(n)] = strings.Join(v, ", ")
		}
	}
	return out
}

// policyBody reads a JSON body of at most BodyMaxBytes into req["body"] and
// returns the reader to forward: the bytes read, then the rest unread, so
// large uploads stream and small ones are sent exactly as received.
//
// req["body_inspected"] says whether policy saw the body, so a rule can
// refuse what it could not inspect (`request.body_inspected && …`)
// instead of letting `has(request.body)` guards pass an uninspected body.
func (t *target) policyBody(r *http.Request, req map[string]any) (io.Reader, error) {
	req["body_inspected"] = false
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return http.NoBody, nil
	}
	if t.BodyMaxBytes <= 0 || r.ContentLength > t.BodyMaxBytes || !isJSON(r.Header.Get("Content-Type")) {
		return r.Body, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, t.BodyMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("proxy: read body: %w", err)
	}
	if int64(len(buf)) > t.BodyMaxBytes {
		return io.MultiReader(bytes.NewReader(buf), r.Body), nil
	}
	var v any
	if json.Unmarshal(buf, &v) == nil {
		req["body"] = v
		req["body_inspected"] = true
	}
	return bytes.NewReader(buf), nil
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// rewrite points the outgoing request at the configured upstream — its
// scheme and host, never one from the request — and swaps credentials.
func (t *target) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	u := pr.Out.URL
	u.Scheme, u.Host, u.User = t.URL.Scheme, t.URL.Host, nil
	base := strings.TrimSuffix(t.URL.Path, "/")
	u.Path = base + c.path
	u.RawPath = ""
	if esc := strings.TrimSuffix(t.URL.EscapedPath(), "/") + c.rawPath; esc != u.EscapedPath() {
		u.RawPath = esc // keep the caller's escaping of other characters (CleanPath vetted it)
	}
	if c.rawPath == "" {
		u.Path, u.RawPath = base+"/", ""
	}
	u.RawQuery = c.rawQuery
	u.Fragment, u.RawFragment = "", ""
	pr.Out.Host = ""
	for _, n := range t.strip {
		pr.Out.Header.Del(n)
	}
	pr.Out.Header.Set(t.AuthHeader, strings.Replace(t.AuthFormat, KeyPlaceholder, c.credential, 1))
	if _, ok := pr.Out.Header["User-Agent"]; !ok {
		pr.Out.Header["User-Agent"] = nil // not Go's default
	}
}

// modifyResponse drops response headers that must not reach the caller,
// and forgets a cached token the upstream rejected.
func (t *target) modifyResponse(resp *http.Response) error {
	for _, n := range t.StripResponseHeaders {
		resp.Header.Del(n)
	}
	c, _ := resp.Request.Context().Value(callKey{}).(*call)
	if c != nil {
		c.status = resp.StatusCode
		if resp.StatusCode == http.StatusUnauthorized {
			if inv, ok := t.Credential.(invalidator); ok {
				inv.invalidate(c.credential)
			}
		}
	}
	return nil
}

// upstreamError answers 502 (504 on timeout) without detail; the cause
// goes to the audit event.
func (t *target) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if c, _ := r.Context().Value(callKey{}).(*call); c != nil {
		c.upstreamErr = redactURLError(err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
		return
	}
	if errors.Is(err, context.Canceled) {
		w.WriteHeader(499) // the caller went away; nobody reads this
		return
	}
	writeError(w, http.StatusBadGateway, "upstream_unavailable", "the upstream could not be reached")
}

// redactURLError drops the query from a *url.Error's URL: it may carry
// the caller's parameters.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return fmt.Errorf("proxy: %s %s: %w", ue.Op, u.Redacted(), ue.Err)
		}
	}
	return fmt.Errorf("proxy: upstream: %w", err)
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", h != ""
	}
	return strings.TrimSpace(tok), true
}

// meta is the request's id and source for audit.
func meta(r *http.Request) broker.Meta {
	m := broker.Meta{RequestID: r.Header.Get("X-Request-Id"), Source: r.RemoteAddr}
	if len(m.RequestID) > 64 || strings.ContainsFunc(m.RequestID, func(c rune) bool {
		return !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
	}) || m.RequestID == "" {
		m.RequestID = newRequestID()
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		m.Source = host
	}
	if _, ok := r.Context().Value(peerKey{}).(Peer); ok {
		m.Source = "unix-socket"
	}
	return m
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// countingReader counts request bytes sent upstream.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error {
	if rc, ok := c.r.(io.Closer); ok {
		return rc.Close()
	}
	return nil
}

// countingWriter counts response bytes and keeps flushing working.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *countingWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

var _ http.Handler = (*Handler)(nil)
