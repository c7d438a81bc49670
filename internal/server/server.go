// Package server is stint's HTTP API: OAuth token exchange, discovery and
// JWKS, credentials and leases, policy dry runs, health and metrics. It
// only translates HTTP to broker calls and core.Error kinds to statuses.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
)

// KeySet publishes the public signing keys (keys.Manager).
type KeySet interface {
	JWKS() jose.JSONWebKeySet
}

// Options configures the server.
type Options struct {
	Broker          *broker.Broker
	Keys            KeySet
	IssuerURL       string
	MaxRequestBytes int64
	// MaxInventoryBytes bounds a POST /v1/inventory body, a scan report
	// that may be far larger than other requests (default 8 MiB).
	MaxInventoryBytes int64
	// AuthFailuresPerMinute bounds the invalid identities one source
	// address may present per minute before it gets 429 for the rest of
	// that minute (0: 100; negative: no bound).
	AuthFailuresPerMinute int
	Logger                *slog.Logger
	// Gatherer serves /metrics; Registerer receives the HTTP metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// Ready reports whether the server can serve (store reachable, …).
	Ready func(ctx context.Context) error
	// Extra routes added by other packages (proxy, CA material), by pattern.
	Extra map[string]http.Handler
}

// Server is the HTTP API.
type Server struct {
	o        Options
	limiter  *authLimiter
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

type ctxKey int

const localAdminKey ctxKey = 1

// New builds the handler tree.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 64 << 10
	}
	if o.AuthFailuresPerMinute == 0 {
		o.AuthFailuresPerMinute = 100
	}
	if o.MaxInventoryBytes <= 0 {
		o.MaxInventoryBytes = 8 << 20
	}
	s := &Server{o: o, mux: http.NewServeMux(), limiter: newAuthLimiter(o.AuthFailuresPerMinute, time.Minute, time.Now)}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stint_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stint_http_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 5},
	}, []string{"route"})
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.requests, s.latency)
	}
	s.route("POST /oauth2/token", s.token)
	s.route("GET /.well-known/openid-configuration", s.discovery)
	s.route("GET /.well-known/jwks.json", s.jwks)
	s.route("POST /v1/credentials", s.authed(s.credentials))
	s.route("GET /v1/leases", s.authed(s.listLeases))
	s.route("GET /v1/leases/{id}", s.authed(s.getLease))
	s.route("POST /v1/leases/{id}/renew", s.authed(s.renewLease))
	s.route("POST /v1/leases/{id}/revoke", s.authed(s.revokeLease))
	s.route("POST /v1/leases/revoke", s.authed(s.revokeMatching))
	s.route("POST /v1/policy/evaluate", s.authed(s.evaluate))
	s.route("GET /v1/audit", s.authed(s.auditQuery))
	s.routeLimit("POST /v1/inventory", s.authed(s.reportInventory), o.MaxInventoryBytes)
	s.route("GET /v1/inventory", s.authed(s.listInventory))
	s.route("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.route("GET /readyz", s.ready)
	if o.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	for pattern, h := range o.Extra {
		s.mux.Handle(pattern, s.guard(h))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, core.E(core.KindNotFound, "", "no such endpoint", nil))
	})
	return s
}

// ServeHTTP serves the API on the network listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AdminHandler serves the same API for the admin Unix socket, whose
// callers count as admins (guarded by the socket's file permissions).
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), localAdminKey, true)))
	})
}

// authed adapts a handler that needs the request's meta and bearer token
// (which may be empty: the broker decides whether one is required).
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, broker.Meta, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := meta(r)
		if s.refuseIfBlocked(w, r, m) {
			return
		}
		tok, err := bearer(r)
		if err != nil {
			s.fail(w, r, m, err)
			return
		}
		h(w, r, m, tok)
	}
}

// route registers h with metrics under pattern, its body bounded by
// MaxRequestBytes.
func (s *Server) route(pattern string, h http.HandlerFunc) {
	s.routeLimit(pattern, h, s.o.MaxRequestBytes)
}

// routeLimit registers h with metrics under pattern, its body bounded by
// maxBytes.
func (s *Server) routeLimit(pattern string, h http.HandlerFunc, maxBytes int64) {
	counter := s.requests.MustCurryWith(prometheus.Labels{"route": pattern})
	hist := s.latency.WithLabelValues(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				s.o.Logger.Error("panic in handler", "route", pattern, "panic", fmt.Sprint(v))
				if !sw.wrote {
					writeError(sw, core.E(core.KindInternal, "", "internal error", nil))
				}
			}
			counter.WithLabelValues(fmt.Sprint(sw.code)).Inc()
			hist.Observe(time.Since(start).Seconds())
		}()
		r.Body = http.MaxBytesReader(sw, r.Body, maxBytes)
		h(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer
// (the reverse proxy flushes and hijacks through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming responses streaming.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// meta extracts the request id, source and admin-socket flag.
func meta(r *http.Request) broker.Meta {
	m := broker.Meta{RequestID: requestID(r), Source: r.RemoteAddr}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		m.Source = host
	}
	if v, _ := r.Context().Value(localAdminKey).(bool); v {
		m.LocalAdmin, m.Source = true, "unix-socket"
	}
	return m
}

// requestID takes a well-formed X-Request-Id or makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && isToken(id) {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// bearer returns the token of "Authorization: Bearer …" ("" when absent).
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", core.E(core.KindUnauthenticated, "invalid_token", "Authorization must be Bearer <token>", nil)
	}
	return strings.TrimSpace(tok), nil
}

// status maps a core.Error kind to an HTTP status.
func status(k core.Kind) int {
	switch k {
	case core.KindInvalid:
		return http.StatusBadRequest
	case core.KindUnauthenticated:
		return http.StatusUnauthorized
	case core.KindForbidden:
		return http.StatusForbidden
	case core.KindNotFound:
		return http.StatusNotFound
	case core.KindConflict:
		return http.StatusConflict
	case core.KindRateLimited:
		return http.StatusTooManyRequests
	case core.KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// writeError writes only the public part of err.
func writeError(w http.ResponseWriter, err error) {
	var e *core.Error
	if !errors.As(err, &e) {
		e = core.E(core.KindInternal, "", "internal error", err)
	}
	if e.Kind == core.KindUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, status(e.Kind), errorBody{Error: e.Code, Description: e.Public})
}

// fail logs the internal cause and writes the public error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, m broker.Meta, err error) {
	k := core.KindOf(err)
	if k == core.KindUnauthenticated && !m.LocalAdmin {
		s.limiter.failed(m.Source)
	}
	lvl := slog.LevelInfo
	if k == core.KindInternal || k == core.KindUnavailable {
		lvl = slog.LevelError
	}
	s.o.Logger.Log(r.Context(), lvl, "request failed", "request_id", m.RequestID, "path", r.URL.Path, "status", status(k), "err", err)
	writeError(w, err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes a bounded JSON body strictly.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return core.Invalid("Content-Type must be application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return core.E(core.KindInvalid, "invalid_request", fmt.Sprintf("request body larger than %d bytes", mbe.Limit), nil)
		}
		return core.Invalid("malformed JSON body: %s", jsonProblem(err))
	}
	if dec.More() {
		return core.Invalid("malformed JSON body: trailing data")
	}
	return nil
}

// jsonProblem describes a JSON error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	default:
		return "cannot parse"
	}
}

func jsonEncoder(w http.ResponseWriter) *json.Encoder { return json.NewEncoder(w) }
