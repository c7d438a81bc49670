package identity

import (
	"context"
	"crypto/sha256"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// DefaultCacheTTL bounds how long a verified token is trusted without a
// new signature check: a key that left its provider's JWKS stops being
// honoured within this time (Kubernetes' API server caches token reviews
// for 10 s to 2 min for the same reason).
const DefaultCacheTTL = 30 * time.Second

// maxCached bounds the cache's memory; when it is full it starts afresh.
const maxCached = 16384

// Cache remembers the principal of each JWT its verifier accepted, keyed
// by the token's SHA-256, until the token expires or TTL passes, whichever
// is first. An agent presents the same platform or session token on every
// call; checking its signature and claims once per TTL instead of once per
// call takes the verification off the hot path. Failures are never cached,
// and neither are non-JWT proofs (a signed AWS request is checked by
// calling STS every time).
type Cache struct {
	next Verifier
	ttl  time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedPrincipal
}

type cachedPrincipal struct {
	p     core.Principal
	until time.Time
}

// NewCache wraps next; ttl <= 0 disables caching (every call goes to next).
func NewCache(next Verifier, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{next: next, ttl: ttl, now: now, m: map[[sha256.Size]byte]cachedPrincipal{}}
}

// Name is the wrapped verifier's.
func (c *Cache) Name() string { return c.next.Name() }

// Verify returns the cached principal of token or verifies it.
func (c *Cache) Verify(ctx context.Context, token string) (core.Principal, error) {
	// A compact JWS never contains ':'; prefixed proofs do.
	if c.ttl <= 0 || strings.Contains(token, ":") || len(token) > MaxTokenSize {
		return c.next.Verify(ctx, token)
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return clonePrincipal(e.p), nil
	}
	p, err := c.next.Verify(ctx, token)
	if err != nil {
		return p, err
	}
	until := now.Add(c.ttl)
	if p.ExpiresAt.IsZero() {
		return p, nil // nothing bounds it but the TTL: do not trust it twice
	}
	if p.ExpiresAt.Before(until) {
		until = p.ExpiresAt
	}
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[key] = cachedPrincipal{p: clonePrincipal(p), until: until}
	c.mu.Unlock()
	return p, nil
}

// clonePrincipal copies the maps a caller might change, so that no caller
// can alter what the cache hands the next one.
func clonePrincipal(p core.Principal) core.Principal {
	p.Attributes = maps.Clone(p.Attributes)
	if p.Actor != nil {
		a := clonePrincipal(*p.Actor)
		p.Actor = &a
	}
	return p
}
