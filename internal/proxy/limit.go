package proxy

import (
	"math"
	"sync"
	"time"
)

// Limit is a token bucket (RatePerSecond, Burst) plus a cap on requests in
// flight (MaxConcurrent). Zero fields mean unlimited.
type Limit struct {
	RatePerSecond float64
	Burst         int
	MaxConcurrent int
}

func (l Limit) zero() bool { return l.RatePerSecond <= 0 && l.MaxConcurrent <= 0 }

// limiter applies one Limit to many keys (principals, or one upstream).
type limiter struct {
	lim Limit
	now func() time.Time

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens   float64
	last     time.Time
	inflight int
}

// maxKeys bounds the per-principal map; idle, full buckets are dropped
// beyond it so a flood of distinct principals cannot grow memory forever.
const maxKeys = 4096

func newLimiter(l Limit, now func() time.Time) *limiter {
	if l.RatePerSecond > 0 && l.Burst <= 0 {
		l.Burst = max(1, int(math.Ceil(l.RatePerSecond)))
	}
	return &limiter{lim: l, now: now, m: map[string]*bucket{}}
}

// acquire takes one token and one concurrency slot for key. On success it
// returns a release func; otherwise how long to wait and which limit hit.
func (l *limiter) acquire(key string) (release func(refund bool), retry time.Duration, which string) {
	if l == nil || l.lim.zero() {
		return func(bool) {}, 0, ""
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= maxKeys {
			l.prune(now)
		}
		b = &bucket{tokens: float64(l.lim.Burst), last: now}
		l.m[key] = b
	}
	if l.lim.RatePerSecond > 0 {
		b.tokens = math.Min(float64(l.lim.Burst), b.tokens+now.Sub(b.last).Seconds()*l.lim.RatePerSecond)
		b.last = now
	}
	if l.lim.MaxConcurrent > 0 && b.inflight >= l.lim.MaxConcurrent {
		return nil, time.Second, "concurrency"
	}
	if l.lim.RatePerSecond > 0 {
		if b.tokens < 1 {
			wait := time.Duration((1 - b.tokens) / l.lim.RatePerSecond * float64(time.Second))
			return nil, wait, "rate"
		}
		b.tokens--
	}
	b.inflight++
	var once sync.Once
	return func(refund bool) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			b.inflight--
			if refund && l.lim.RatePerSecond > 0 {
				b.tokens = math.Min(float64(l.lim.Burst), b.tokens+1)
			}
		})
	}, 0, ""
}

// prune drops buckets with nothing in flight that have refilled.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.m {
		full := l.lim.RatePerSecond <= 0 || b.tokens+now.Sub(b.last).Seconds()*l.lim.RatePerSecond >= float64(l.lim.Burst)
		if b.inflight == 0 && full {
			delete(l.m, k)
		}
	}
}
