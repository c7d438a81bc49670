package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stint-dev/stint/internal/core"
	jwtissuer "github.com/stint-dev/stint/internal/issuer/jwt"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/store"
)

// Source yields the upstream credential for one request. Implementations
// cache; a returned error never contains the credential.
type Source interface {
	// Credential returns the secret to put in the auth header for a
	// request by id (acting for human, which may be nil).
	Credential(ctx context.Context, id core.Principal, human *core.Principal) (string, error)
	// Kind names the source in audit events: static, oauth2 or jwt.
	Kind() string
}

// invalidator is implemented by sources whose cached credential the
// upstream may reject early (an OAuth2 token revoked before expiry).
type invalidator interface{ invalidate(rejected string) }

// ErrNoKey means no static key was set for the target.
var ErrNoKey = errors.New("proxy: no upstream key is set for this target (stint target set-key)")

// MaxKeyBytes bounds a static upstream key.
const MaxKeyBytes = 16 << 10

// KeyPurpose is the store purpose (and record ID) of a target's static key.
func KeyPurpose(target string) string { return "upstream:" + target }

func keyAAD(target string) []byte { return []byte("upstream-key/" + target) }

// CheckKey trims one trailing line break and refuses keys that are empty,
// too long, or could split a header.
func CheckKey(key []byte) ([]byte, error) {
	key = bytes.TrimSuffix(bytes.TrimSuffix(key, []byte("\n")), []byte("\r"))
	switch {
	case len(key) == 0:
		return nil, errors.New("proxy: the key is empty")
	case len(key) > MaxKeyBytes:
		return nil, fmt.Errorf("proxy: the key is longer than %d bytes", MaxKeyBytes)
	case bytes.ContainsAny(key, "\r\n\x00"):
		return nil, errors.New("proxy: the key contains a line break or NUL")
	}
	return key, nil
}

// SetKey seals key under the KEK, bound to the target's name, and stores
// it as the target's one upstream key record (replacing any earlier one).
func SetKey(ctx context.Context, st store.Store, s *keys.Sealer, target string, key []byte, now time.Time) error {
	key, err := CheckKey(key)
	if err != nil {
		return err
	}
	sealed, err := s.Seal(key, keyAAD(target))
	if err != nil {
		return fmt.Errorf("proxy: seal key: %w", err)
	}
	p := KeyPurpose(target)
	if err := st.PutKey(ctx, store.KeyRecord{ID: p, Purpose: p, Algorithm: "static", Private: sealed, CreatedAt: now.UTC()}); err != nil {
		return fmt.Errorf("proxy: store key: %w", err)
	}
	return nil
}

// LoadKey opens the target's static key; ErrNoKey when none is set.
func LoadKey(ctx context.Context, st store.Store, s *keys.Sealer, target string) ([]byte, error) {
	recs, err := st.ListKeys(ctx, KeyPurpose(target))
	if err != nil {
		return nil, fmt.Errorf("proxy: read key: %w", err)
	}
	if len(recs) == 0 {
		return nil, ErrNoKey
	}
	key, err := s.Open(recs[0].Private, keyAAD(target))
	if err != nil {
		return nil, fmt.Errorf("proxy: open key of %s: %w", target, err)
	}
	return key, nil
}

// StaticKey serves a target's sealed static key, re-read from the store
// every refresh interval so `stint target set-key` reaches running servers.
type StaticKey struct {
	store   store.Store
	sealer  *keys.Sealer
	target  string
	refresh time.Duration
	now     func() time.Time

	mu      sync.Mutex
	key     string
	fetched time.Time
}

// NewStaticKey returns the static key source of target. refresh ≤ 0 means 30 s.
func NewStaticKey(st store.Store, s *keys.Sealer, target string, refresh time.Duration, now func() time.Time) *StaticKey {
	if refresh <= 0 {
		refresh = 30 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &StaticKey{store: st, sealer: s, target: target, refresh: refresh, now: now}
}

// Credential returns the key, from memory while fresh.
func (k *StaticKey) Credential(ctx context.Context, _ core.Principal, _ *core.Principal) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.key != "" && now.Sub(k.fetched) < k.refresh {
		return k.key, nil
	}
	b, err := LoadKey(ctx, k.store, k.sealer, k.target)
	if err != nil {
		if k.key != "" && !errors.Is(err, ErrNoKey) {
			return k.key, nil // the store is briefly unreachable: keep serving the last key
		}
		return "", err
	}
	k.key, k.fetched = string(b), now
	return k.key, nil
}

// Kind is "static".
func (k *StaticKey) Kind() string { return "static" }

// OAuth2Config configures a client-credentials grant.
type OAuth2Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	HTTPClient   *http.Client
	Now          func() time.Time
}

// OAuth2 fetches an access token with the client-credentials grant and
// caches it until shortly before it expires; concurrent misses share one
// token request.
type OAuth2 struct {
	c  OAuth2Config
	sf singleflight.Group

	mu  sync.Mutex
	tok string
	exp time.Time
}

// NewOAuth2 checks cfg and returns the source.
func NewOAuth2(cfg OAuth2Config) (*OAuth2, error) {
	if cfg.TokenURL == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("oauth2: token_url, client_id and a client secret are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OAuth2{c: cfg}, nil
}

// Kind is "oauth2".
func (o *OAuth2) Kind() string { return "oauth2" }

// Credential returns the cached token or fetches a new one.
func (o *OAuth2) Credential(ctx context.Context, _ core.Principal, _ *core.Principal) (string, error) {
	o.mu.Lock()
	tok, exp := o.tok, o.exp
	o.mu.Unlock()
	if tok != "" && o.c.Now().Before(exp) {
		return tok, nil
	}
	v, err, _ := o.sf.Do("token", func() (any, error) {
		o.mu.Lock()
		if o.tok != "" && o.c.Now().Before(o.exp) {
			defer o.mu.Unlock()
			return o.tok, nil
		}
		o.mu.Unlock()
		tok, life, err := o.fetch(context.WithoutCancel(ctx))
		if err != nil {
			return "", err
		}
		o.mu.Lock()
		o.tok, o.exp = tok, o.c.Now().Add(life)
		o.mu.Unlock()
		return tok, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// invalidate drops the cached token if it is the one the upstream rejected.
func (o *OAuth2) invalidate(rejected string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok == rejected {
		o.tok, o.exp = "", time.Time{}
	}
}

// fetch runs the grant (RFC 6749 §4.4) with client_secret_basic and returns
// the token and how long to cache it.
func (o *OAuth2) fetch(ctx context.Context) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(o.c.Scopes) > 0 {
		form.Set("scope", strings.Join(o.c.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("oauth2: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(o.c.ClientID), url.QueryEscape(o.c.ClientSecret))
	resp, err := o.c.HTTPClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("oauth2: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("oauth2: read token response: %w", err)
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		// Only the status and the RFC 6749 error code: the body may echo input.
		return "", 0, fmt.Errorf("oauth2: token endpoint answered %d %s", resp.StatusCode, safeCode(tr.Error))
	}
	if tr.AccessToken == "" || strings.ContainsAny(tr.AccessToken, "\r\n") {
		return "", 0, errors.New("oauth2: token response has no usable access_token")
	}
	life := 5 * time.Minute
	var secs float64
	if err := json.Unmarshal(bytes.Trim(tr.ExpiresIn, `"`), &secs); err == nil && secs > 0 {
		life = time.Duration(secs * float64(time.Second))
	}
	// Renew ahead of expiry so a request never carries a token that dies
	// on the way: 30 s early, or at half-life for short-lived tokens.
	if life > time.Minute {
		life -= 30 * time.Second
	} else {
		life /= 2
	}
	return tr.AccessToken, life, nil
}

func safeCode(s string) string {
	if len(s) > 40 || strings.IndexFunc(s, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') }) >= 0 {
		return ""
	}
	return s
}

// JWTConfig configures stint-minted upstream tokens.
type JWTConfig struct {
	Signer    jwtissuer.Signer
	IssuerURL string
	Audience  string
	// TTL of each token (default 5 m); a token is reused for half of it.
	TTL time.Duration
	Now func() time.Time
}

// JWT mints a short-lived stint token naming the principal (and, for
// on-behalf-of calls, the human as sub with the workload in act), so the
// upstream can verify who called against stint's JWKS.
type JWT struct {
	c JWTConfig

	mu    sync.Mutex
	cache map[string]minted
}

type minted struct {
	tok   string
	until time.Time
}

// NewJWT checks cfg and returns the source.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	if cfg.Signer == nil || cfg.IssuerURL == "" || cfg.Audience == "" {
		return nil, errors.New("proxy: jwt credential needs a signer, issuer URL and audience")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JWT{c: cfg, cache: map[string]minted{}}, nil
}

// Kind is "jwt".
func (j *JWT) Kind() string { return "jwt" }

// Credential returns a cached token for this caller or mints one.
func (j *JWT) Credential(_ context.Context, id core.Principal, human *core.Principal) (string, error) {
	now := j.c.Now()
	subject := id
	if human != nil {
		h := *human
		w := id
		h.Actor = &w
		subject = h
	}
	// The token restates the whole principal (attributes, actor chain),
	// and many callers share a subject (pods of one service account, jobs
	// of one repository): key on everything the token says.
	b, err := json.Marshal(subject)
	if err != nil {
		return "", fmt.Errorf("proxy: describe caller: %w", err)
	}
	sum := sha256.Sum256(b)
	key := string(sum[:])
	j.mu.Lock()
	m, ok := j.cache[key]
	j.mu.Unlock()
	if ok && now.Before(m.until) {
		return m.tok, nil
	}
	tok, err := jwtissuer.Mint(j.c.Signer, jwtissuer.Token{
		Issuer: j.c.IssuerURL, Audience: j.c.Audience, Subject: subject, IssuedAt: now, Expiry: now.Add(j.c.TTL),
	})
	if err != nil {
		return "", fmt.Errorf("proxy: mint upstream jwt: %w", err)
	}
	j.mu.Lock()
	if len(j.cache) >= maxKeys {
		clear(j.cache)
	}
	until := now.Add(j.c.TTL / 2)
	for _, p := range []*core.Principal{&id, human} {
		if p != nil && !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(until) {
			until = p.ExpiresAt // never serve a token past the caller's own proof
		}
	}
	j.cache[key] = minted{tok: tok, until: until}
	j.mu.Unlock()
	return tok, nil
}

var (
	_ Source      = (*StaticKey)(nil)
	_ Source      = (*OAuth2)(nil)
	_ Source      = (*JWT)(nil)
	_ invalidator = (*OAuth2)(nil)
)
