package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"golang.org/x/sync/singleflight"
)

// Defaults for Options.
const (
	DefaultMinRefresh = 30 * time.Second
	DefaultMaxAge     = time.Hour
	DefaultMaxBytes   = 1 << 20
	// defaultFetchTimeout bounds a fetch when the caller's client has no
	// timeout of its own; a hung issuer must not hold waiters forever.
	defaultFetchTimeout = 10 * time.Second
)

// Options configures a Cache. Exactly one of File, URL and Issuer is set.
type Options struct {
	// File is a JWKS file, re-read on refresh like a URL is re-fetched.
	File string
	// URL is a JWKS endpoint.
	URL string
	// Issuer enables OIDC discovery: the JWKS is found at the jwks_uri of
	// Issuer + "/.well-known/openid-configuration", whose issuer must match.
	Issuer string
	// HTTPClient fetches URL and discovery documents; its Timeout applies.
	// If nil, a client with a 10 s timeout is used.
	HTTPClient *http.Client
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
	// MinRefresh is the least time between two refreshes, so that tokens
	// with made-up kids cannot hammer the issuer. Default 30 s.
	MinRefresh time.Duration
	// MaxAge is the age after which the set is refreshed even when every
	// kid is known, so revoked keys go away. Default 1 h.
	MaxAge time.Duration
	// MaxBytes bounds a fetched document. Default 1 MiB.
	MaxBytes int64
	// OnRefresh, if set, is called after every load attempt with the
	// source (the File, URL or Issuer option as configured) and the error,
	// nil on success. It must not block; the lead counts it in metrics.
	OnRefresh func(source string, err error)
}

// snapshot is one loaded key set; it is replaced, never mutated, so readers
// need the lock only to load the pointer.
type snapshot struct {
	keys    map[string]jose.JSONWebKey
	fetched time.Time
}

// Cache is a KeySource that keeps a JWKS in memory and refreshes it.
type Cache struct {
	opts   Options
	source string
	load   func(ctx context.Context) ([]byte, error) // nil for static sets

	group singleflight.Group

	mu          sync.RWMutex
	snap        *snapshot
	lastAttempt time.Time
}

// NewStatic returns a Cache over a fixed set that never refreshes. Private
// asymmetric keys are reduced to their public halves; symmetric and
// unusable keys are dropped (see PublicSet).
func NewStatic(set jose.JSONWebKeySet) *Cache {
	return &Cache{snap: &snapshot{keys: PublicSet(set)}}
}

// New returns a Cache after loading the key set once; it fails when that
// first load fails, so a misconfigured provider is found at start-up.
func New(ctx context.Context, o Options) (*Cache, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: defaultFetchTimeout}
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	c := &Cache{opts: o}
	set := 0
	for _, s := range []string{o.File, o.URL, o.Issuer} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("jwks: exactly one of file, url and issuer must be set")
	}
	switch {
	case o.File != "":
		c.source = o.File
		c.load = c.readFile
	case o.URL != "":
		if err := checkURL(o.URL); err != nil {
			return nil, err
		}
		c.source = o.URL
		c.load = func(ctx context.Context) ([]byte, error) { return c.get(ctx, o.URL) }
	default:
		if err := checkURL(o.Issuer); err != nil {
			return nil, err
		}
		c.source = o.Issuer
		c.load = c.discover
	}
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Key returns the key with kid, refreshing the set first when kid is
// unknown and the last refresh is older than MinRefresh. A known key from a
// set older than MaxAge is returned at once while a refresh runs in the
// background.
func (c *Cache) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	c.mu.RLock()
	snap, last := c.snap, c.lastAttempt
	c.mu.RUnlock()
	if kid == "" {
		return jose.JSONWebKey{}, fmt.Errorf("%w: empty kid", ErrUnknownKID)
	}

	if k, ok := snap.keys[kid]; ok {
		if c.load != nil && c.due(snap.fetched, c.opts.MaxAge) && c.due(last, c.opts.MinRefresh) {
			// Detached from ctx: the request that noticed the age should not
			// cancel the refresh every other request will benefit from.
			c.startRefresh(ctx)
		}
		return k, nil
	}
	if c.load == nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w %q", ErrUnknownKID, kid)
	}
	// Always through the group, even when the floor says no: a miss that
	// arrives while a fetch is in flight then waits for that fetch.
	ch := c.startRefresh(ctx)
	select {
	case <-ch:
		// A failed refresh keeps the old set; the kid is still unknown.
	case <-ctx.Done():
		return jose.JSONWebKey{}, fmt.Errorf("jwks: wait for refresh: %w", ctx.Err())
	}
	c.mu.RLock()
	k, ok := c.snap.keys[kid]
	c.mu.RUnlock()
	if !ok {
		return jose.JSONWebKey{}, fmt.Errorf("%w %q", ErrUnknownKID, kid)
	}
	return k, nil
}

// due reports whether at least d has passed since t.
func (c *Cache) due(t time.Time, d time.Duration) bool {
	return c.opts.Now().Sub(t) >= d
}

// startRefresh joins the refresh in flight or starts one, detached from
// ctx: the request that noticed a miss should not cancel the fetch that
// every waiting request shares.
func (c *Cache) startRefresh(ctx context.Context) <-chan singleflight.Result {
	return c.group.DoChan("refresh", func() (any, error) {
		return nil, c.refreshShared(context.WithoutCancel(ctx))
	})
}

// refreshShared refreshes unless another refresh happened within
// MinRefresh; the check is repeated under the lock so that callers racing
// past the first check still cause only one fetch.
func (c *Cache) refreshShared(ctx context.Context) error {
	c.mu.Lock()
	if !c.due(c.lastAttempt, c.opts.MinRefresh) {
		c.mu.Unlock()
		return nil
	}
	c.lastAttempt = c.opts.Now()
	c.mu.Unlock()
	return c.refresh(ctx)
}

// refresh loads and parses the set and installs it on success.
func (c *Cache) refresh(ctx context.Context) error {
	timeout := c.opts.HTTPClient.Timeout
	if timeout <= 0 {
		timeout = defaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := c.opts.Now()
	data, err := c.load(ctx)
	var keys map[string]jose.JSONWebKey
	if err == nil {
		keys, err = parseSet(data)
	}
	if err != nil {
		err = fmt.Errorf("jwks: load %s: %w", c.source, err)
	}
	if c.opts.OnRefresh != nil {
		c.opts.OnRefresh(c.source, err)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.snap = &snapshot{keys: keys, fetched: now}
	if c.lastAttempt.Before(now) {
		c.lastAttempt = now
	}
	c.mu.Unlock()
	return nil
}

func (c *Cache) readFile(context.Context) ([]byte, error) {
	f, err := os.Open(c.opts.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, c.opts.MaxBytes)
}

// discover follows the issuer's discovery document to its jwks_uri. The
// issuer in the document must equal the configured one (OIDC Discovery
// 4.3), or a discovery document could redirect trust to another issuer.
func (c *Cache) discover(ctx context.Context) ([]byte, error) {
	base := strings.TrimSuffix(c.opts.Issuer, "/")
	data, err := c.get(ctx, base+"/.well-known/openid-configuration")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := josejson.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if strings.TrimSuffix(doc.Issuer, "/") != base {
		return nil, fmt.Errorf("discovery document names issuer %q", doc.Issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return nil, err
	}
	return c.get(ctx, doc.JWKSURI)
}

func (c *Cache) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return readLimited(resp.Body, c.opts.MaxBytes)
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("document larger than %d bytes", max)
	}
	return data, nil
}

// checkURL requires https, except for loopback hosts used in development
// and tests: keys fetched in clear text could be swapped by anyone on path.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks: parse url: %w", err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("jwks: %s: plain http is allowed only for loopback hosts", raw)
	default:
		return fmt.Errorf("jwks: %s: url must be https", raw)
	}
}

var _ KeySource = (*Cache)(nil)
