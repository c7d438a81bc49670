package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
)

// authLimiter refuses, for the rest of a window, a source that presented
// too many invalid identities in it. Each failed authentication costs a
// durable audit write (and, for aws-iam proofs, an STS call); without a
// bound, a flood of bad tokens would cost disk and CPU for free. Only
// failures count, so a busy client with good tokens is never slowed.
type authLimiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	sources map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

// maxTrackedSources bounds the limiter's memory; on overflow it forgets.
const maxTrackedSources = 10000

func newAuthLimiter(max int, window time.Duration, now func() time.Time) *authLimiter {
	return &authLimiter{max: max, window: window, now: now, sources: map[string]*failWindow{}}
}

// blocked reports whether source is refused now, and until when.
func (l *authLimiter) blocked(source string) (bool, time.Duration) {
	if l == nil || l.max <= 0 {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.sources[source]
	if !ok {
		return false, 0
	}
	left := w.start.Add(l.window).Sub(l.now())
	if left <= 0 {
		delete(l.sources, source)
		return false, 0
	}
	return w.n >= l.max, left
}

// failed counts one failed authentication of source.
func (l *authLimiter) failed(source string) {
	if l == nil || l.max <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.sources[source]
	if !ok || now.Sub(w.start) >= l.window {
		if !ok && len(l.sources) >= maxTrackedSources {
			clear(l.sources)
		}
		w = &failWindow{start: now}
		l.sources[source] = w
	}
	w.n++
}

// refuseIfBlocked answers 429 when the request's source is blocked.
func (s *Server) refuseIfBlocked(w http.ResponseWriter, r *http.Request, m broker.Meta) bool {
	if m.LocalAdmin {
		return false
	}
	if blocked, left := s.limiter.blocked(m.Source); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(left/time.Second)+1))
		s.fail(w, r, m, core.E(core.KindRateLimited, "", "too many invalid identities from this address; retry later", nil))
		return true
	}
	return false
}

// guard puts a handler the server does not own (the gateway under
// /proxy/, the CA material) under the same invalid-identity limit as the
// API: a blocked source gets 429, and each 401 it is answered counts as a
// failure. Without it, a flood of bad tokens at /proxy/ would cost a
// verification and an audit write each, unbounded.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := meta(r)
		if s.refuseIfBlocked(w, r, m) {
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.code == http.StatusUnauthorized && !m.LocalAdmin {
			s.limiter.failed(m.Source)
		}
	})
}
