package keys

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/jwks"
	"github.com/stint-dev/stint/internal/store"
)

// PurposeSigning is the store purpose of the JWT signing keys.
const PurposeSigning = "signing"

// retireSkew is added to a retired key's lifetime so a token issued just
// before rotation still verifies on a relying party whose clock runs late
// (the architecture allows 60 s of skew).
const retireSkew = time.Minute

// Defaults for Options.
const (
	DefaultAlgorithm   = "ES256"
	DefaultTokenMaxTTL = 24 * time.Hour
	DefaultReload      = 30 * time.Second
)

// missReloadEvery bounds how often an unknown kid makes Key reload from the
// store, so a flood of tokens with made-up kids cannot hammer the database.
const missReloadEvery = time.Second

// ErrUnknownKey is wrapped by Key for a kid that is not published. It is
// jwks.ErrUnknownKID, so verifiers treat stint's own keys like any JWKS.
var ErrUnknownKey = jwks.ErrUnknownKID

// jwtAlgs maps the JWS algorithms stint signs with to the key kind it
// generates for them.
var jwtAlgs = map[string]string{
	"ES256": KindECDSAP256,
	"EdDSA": KindEd25519,
	"RS256": KindRSA2048,
}

// Options configure a Manager. Zero values take the documented defaults.
type Options struct {
	// Algorithm of new signing keys: ES256 (default), EdDSA or RS256
	// (2048-bit). An existing current key keeps its algorithm until the
	// next Rotate, so replicas configured differently do not fight.
	Algorithm string
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// TokenMaxTTL is the longest lifetime of a token this server signs: a
	// retired key stays in the JWKS this long, plus 60 s of clock skew and
	// the Reload interval. Default 24h.
	TokenMaxTTL time.Duration
	// Reload is how often keys are re-read from the store, so rotation on
	// another replica reaches this one. Default 30s; negative disables.
	Reload time.Duration
	// Logger receives background reload failures; slog.Default when nil.
	Logger *slog.Logger
}

// KeyInfo describes one signing key for `stint keys list`. It holds no
// private material.
type KeyInfo struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Created   time.Time `json:"created"`
	// NotAfter is when the key leaves the JWKS; zero for the current key.
	NotAfter  time.Time `json:"not_after,omitzero"`
	Current   bool      `json:"current"`
	Published bool      `json:"published"`
}

// Manager holds the JWT signing keys and the other private keys of an
// installation, all stored sealed in the store. Every method is safe for
// concurrent use. Lifecycle: NewManager → use → Close.
type Manager struct {
	st     store.Store
	sealer *Sealer
	o      Options
	log    *slog.Logger

	// state is swapped whole on reload so Sign and Key never take a lock.
	state atomic.Pointer[keyState]

	reloadMu sync.Mutex // serialises reloads and rotation
	lastMiss time.Time  // last reload caused by an unknown kid (wall clock)

	otherMu sync.Mutex // guards signers and secrets, held across first-use I/O
	signers map[string]otherKey
	secrets map[string][]byte

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type otherKey struct {
	kind   string
	signer crypto.Signer
}

// keyState is an immutable view of the signing keys.
type keyState struct {
	current *signingKey
	keys    []publicKey // newest first
	byKID   map[string]int
}

type publicKey struct {
	jwk     jose.JSONWebKey
	created time.Time
	// notAfter is when the key leaves the JWKS; zero for the current key.
	notAfter time.Time
}

func (k publicKey) published(now time.Time) bool {
	return k.notAfter.IsZero() || now.Before(k.notAfter)
}

// signingKey is the current private key with its go-jose signers, built
// once because jose.NewSigner is costly next to signing itself.
type signingKey struct {
	kid, alg string
	priv     crypto.Signer
	jwt      jose.Signer
	typed    sync.Map // typ → jose.Signer
}

func newSigningKey(kid, alg string, priv crypto.Signer) (*signingKey, error) {
	k := &signingKey{kid: kid, alg: alg, priv: priv}
	s, err := k.build("JWT")
	if err != nil {
		return nil, err
	}
	k.jwt = s
	return k, nil
}

func (k *signingKey) build(typ string) (jose.Signer, error) {
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: k.alg}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return nil, fmt.Errorf("keys: signer for %s: %w", k.kid, err)
	}
	return s, nil
}

func (k *signingKey) signer(typ string) (jose.Signer, error) {
	if typ == "JWT" {
		return k.jwt, nil
	}
	if s, ok := k.typed.Load(typ); ok {
		return s.(jose.Signer), nil
	}
	s, err := k.build(typ)
	if err != nil {
		return nil, err
	}
	k.typed.Store(typ, s)
	return s, nil
}

// NewManager loads the signing keys from st, generating and storing the
// first one when there is none. When several replicas start on an empty
// store at once each may write a key; each then uses the newest it reads,
// and background reloads bring them to the same one, while the others stay
// published until tokens signed with them have expired.
func NewManager(ctx context.Context, st store.Store, s *Sealer, o Options) (*Manager, error) {
	if o.Algorithm == "" {
		o.Algorithm = DefaultAlgorithm
	}
	if _, ok := jwtAlgs[o.Algorithm]; !ok {
		return nil, fmt.Errorf("keys: unsupported signing algorithm %q (want ES256, EdDSA or RS256)", o.Algorithm)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenMaxTTL <= 0 {
		o.TokenMaxTTL = DefaultTokenMaxTTL
	}
	if o.Reload == 0 {
		o.Reload = DefaultReload
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if st == nil || s == nil {
		return nil, errors.New("keys: a store and a sealer are required")
	}
	m := &Manager{
		st: st, sealer: s, o: o, log: o.Logger,
		signers: map[string]otherKey{},
		secrets: map[string][]byte{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	m.reloadMu.Lock()
	err := m.reloadLocked(ctx)
	if errors.Is(err, errNoKeys) {
		var rec store.KeyRecord
		if rec, err = m.newSigningRecord(); err == nil {
			if err = st.PutKey(ctx, rec); err != nil {
				err = fmt.Errorf("keys: store first signing key: %w", err)
			} else {
				err = m.reloadLocked(ctx)
			}
		}
	}
	m.reloadMu.Unlock()
	if err != nil {
		return nil, err
	}
	if o.Reload > 0 {
		go m.loop(o.Reload)
	} else {
		close(m.done)
	}
	return m, nil
}

var errNoKeys = errors.New("keys: no signing keys in the store")

func (m *Manager) loop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if err := m.Reload(ctx); err != nil {
				m.log.Warn("keys: reload signing keys", "error", err)
			}
			cancel()
		}
	}
}

// Close stops the background reload. The Manager still signs afterwards
// with the keys it holds.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
}

// Reload re-reads the signing keys from the store now.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	return m.reloadLocked(ctx)
}

func (m *Manager) newSigningRecord() (store.KeyRecord, error) {
	priv, err := generate(jwtAlgs[m.o.Algorithm])
	if err != nil {
		return store.KeyRecord{}, err
	}
	return m.newRecord(PurposeSigning, m.o.Algorithm, m.o.Algorithm, priv)
}

// view is the analysis of one ListKeys result shared by reload and List.
type view struct {
	recs     []store.KeyRecord // newest first
	current  int
	notAfter []time.Time // effective; zero for the current key
}

// analyse picks the current key and when each other key leaves the JWKS.
// The current key is the newest one not yet retired; a key that was never
// retired but has a newer key (two replicas wrote first keys at once, or a
// rotation stopped half way) leaves the JWKS TokenMaxTTL after the newer
// key appeared, which is the latest it can have signed a live token. When
// every key is retired (two rotations raced) the newest serves on.
func (m *Manager) analyse(recs []store.KeyRecord) view {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, newerFirst)
	v := view{recs: recs, notAfter: make([]time.Time, len(recs))}
	v.current = slices.IndexFunc(recs, func(r store.KeyRecord) bool { return r.NotAfter.IsZero() })
	if v.current < 0 {
		v.current = 0
	}
	for i, r := range recs {
		switch {
		case i == v.current:
		case !r.NotAfter.IsZero():
			v.notAfter[i] = r.NotAfter
		default:
			v.notAfter[i] = recs[i-1].CreatedAt.Add(m.retireAfter())
		}
	}
	return v
}

// retireAfter is how long a replaced key stays published: other replicas
// may sign with it until their next reload, and each token lives up to
// TokenMaxTTL, checked with up to retireSkew of clock skew.
func (m *Manager) retireAfter() time.Duration {
	return m.o.TokenMaxTTL + retireSkew + max(m.o.Reload, 0)
}

// newerFirst orders keys newest first. Creation times tie when a store
// rounds them or a clock is coarse; then a key still open sorts before a
// retired one (it was made later, by the rotation that retired the other),
// and the id decides the rest so that every replica picks the same key.
func newerFirst(a, b store.KeyRecord) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	if ao, bo := a.NotAfter.IsZero(), b.NotAfter.IsZero(); ao != bo {
		if ao {
			return -1
		}
		return 1
	}
	return strings.Compare(b.ID, a.ID)
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	recs, err := m.st.ListKeys(ctx, PurposeSigning)
	if err != nil {
		return fmt.Errorf("keys: list signing keys: %w", err)
	}
	if len(recs) == 0 {
		return errNoKeys
	}
	v := m.analyse(recs)
	ns := &keyState{byKID: make(map[string]int, len(v.recs))}
	for i, r := range v.recs {
		jwk, err := parsePublic(r)
		if err != nil {
			if i == v.current {
				return err
			}
			// One damaged old record must not stop signing.
			m.log.Warn("keys: skipping unreadable signing key", "kid", r.ID, "error", err)
			continue
		}
		if _, ok := jwtAlgs[r.Algorithm]; !ok {
			if i == v.current {
				return fmt.Errorf("keys: current signing key %s has unsupported algorithm %q", r.ID, r.Algorithm)
			}
			continue
		}
		ns.byKID[r.ID] = len(ns.keys)
		ns.keys = append(ns.keys, publicKey{jwk: jwk, created: r.CreatedAt, notAfter: v.notAfter[i]})
	}
	cur := v.recs[v.current]
	if old := m.state.Load(); old != nil && old.current.kid == cur.ID {
		ns.current = old.current
	} else {
		priv, err := m.unseal(cur, ns.keys[ns.byKID[cur.ID]].jwk)
		if err != nil {
			return err
		}
		if err := checkKind(cur.Algorithm, priv); err != nil {
			return err
		}
		if ns.current, err = newSigningKey(cur.ID, cur.Algorithm, priv); err != nil {
			return err
		}
	}
	m.state.Store(ns)
	return nil
}

// checkKind makes sure a stored key fits its JWS algorithm, so a record
// edited in the database cannot make stint sign RS256 with an EC key.
func checkKind(alg string, priv crypto.Signer) error {
	kind := kindOf(priv.Public())
	want := jwtAlgs[alg]
	if kind == want || (alg == "RS256" && strings.HasPrefix(kind, "rsa-")) {
		return nil
	}
	return fmt.Errorf("keys: signing key is %s, which does not fit %s", kind, alg)
}

// Sign returns claims, marshalled with encoding/json, as a compact JWS
// with header typ "JWT" and the current key's kid.
func (m *Manager) Sign(claims any) (string, error) {
	return m.SignWithType(claims, "JWT")
}

// SignWithType is Sign with another typ header, e.g. "at+jwt" for RFC 9068
// access tokens.
func (m *Manager) SignWithType(claims any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keys: marshal claims: %w", err)
	}
	s, err := m.state.Load().current.signer(typ)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("keys: serialize jws: %w", err)
	}
	return out, nil
}

// Current returns the kid and JWS algorithm of the key Sign uses.
func (m *Manager) Current() (kid, alg string) {
	c := m.state.Load().current
	return c.kid, c.alg
}

// Key returns the public key with this kid while it is published (current,
// or retired and not yet past its NotAfter). An unknown kid may be a key
// another replica just rotated to, so it makes the Manager reload from the
// store, at most once per second.
func (m *Manager) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok, known := m.lookup(kid); ok {
		return k, nil
	} else if known {
		return jose.JSONWebKey{}, fmt.Errorf("keys: key %.64q is retired: %w", kid, ErrUnknownKey)
	}
	if err := m.reloadOnMiss(ctx); err != nil {
		return jose.JSONWebKey{}, err
	}
	if k, ok, _ := m.lookup(kid); ok {
		return k, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("keys: key %.64q: %w", kid, ErrUnknownKey)
}

// lookup reports the key, whether it is published, and whether it is known.
func (m *Manager) lookup(kid string) (jose.JSONWebKey, bool, bool) {
	st := m.state.Load()
	i, ok := st.byKID[kid]
	if !ok {
		return jose.JSONWebKey{}, false, false
	}
	k := st.keys[i]
	if !k.published(m.o.Now()) {
		return jose.JSONWebKey{}, false, true
	}
	return k.jwk, true, true
}

func (m *Manager) reloadOnMiss(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	// The wall clock, not o.Now: this limits load on the store, which has
	// nothing to do with token validity, and a frozen test clock must not
	// stop reloads forever.
	if t := time.Now(); t.Sub(m.lastMiss) >= missReloadEvery {
		m.lastMiss = t
		if err := m.reloadLocked(ctx); err != nil {
			return fmt.Errorf("keys: reload on unknown kid: %w", err)
		}
	}
	return nil
}

// JWKS returns the public keys relying parties need: the current key and
// every retired key whose NotAfter is still ahead.
func (m *Manager) JWKS() jose.JSONWebKeySet {
	st := m.state.Load()
	now := m.o.Now()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(st.keys))}
	set.Keys = append(set.Keys, st.keys[st.byKID[st.current.kid]].jwk)
	for _, k := range st.keys {
		if k.jwk.KeyID != st.current.kid && k.published(now) {
			set.Keys = append(set.Keys, k.jwk)
		}
	}
	return set
}

// Rotate makes a new key current. The keys it replaces get NotAfter =
// now + TokenMaxTTL + skew + Reload and stay in the JWKS until then, so
// tokens they signed keep verifying. Other replicas pick the new key up on
// their next reload; until then they still sign with the old one, which is
// fine because the Reload interval is part of its remaining life.
func (m *Manager) Rotate(ctx context.Context) (string, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	rec, err := m.newSigningRecord()
	if err != nil {
		return "", err
	}
	if err := m.st.PutKey(ctx, rec); err != nil {
		return "", fmt.Errorf("keys: store new signing key: %w", err)
	}
	recs, err := m.st.ListKeys(ctx, PurposeSigning)
	if err != nil {
		return "", fmt.Errorf("keys: list signing keys: %w", err)
	}
	// Compare with the new key as stored, in case the store rounds times.
	created := rec.CreatedAt
	for _, r := range recs {
		if r.ID == rec.ID {
			created = r.CreatedAt
		}
	}
	retire := m.o.Now().Add(m.retireAfter())
	for _, r := range recs {
		// Keys newer than ours come from a rotation racing this one on
		// another replica: leave them, the newest wins everywhere.
		if r.ID == rec.ID || !r.NotAfter.IsZero() || r.CreatedAt.After(created) {
			continue
		}
		r.NotAfter = retire
		if err := m.st.PutKey(ctx, r); err != nil {
			return "", fmt.Errorf("keys: retire signing key %s: %w", r.ID, err)
		}
	}
	if err := m.reloadLocked(ctx); err != nil {
		return "", err
	}
	return rec.ID, nil
}

// List describes every stored signing key, newest first, read from the
// store rather than this Manager's cache.
func (m *Manager) List(ctx context.Context) ([]KeyInfo, error) {
	recs, err := m.st.ListKeys(ctx, PurposeSigning)
	if err != nil {
		return nil, fmt.Errorf("keys: list signing keys: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	v := m.analyse(recs)
	now := m.o.Now()
	out := make([]KeyInfo, len(v.recs))
	for i, r := range v.recs {
		out[i] = KeyInfo{
			KID: r.ID, Algorithm: r.Algorithm, Created: r.CreatedAt,
			NotAfter: v.notAfter[i], Current: i == v.current,
			Published: publicKey{notAfter: v.notAfter[i]}.published(now),
		}
	}
	return out, nil
}

// Manager answers public-key look-ups for token verification.
var _ jwks.KeySource = (*Manager)(nil)
