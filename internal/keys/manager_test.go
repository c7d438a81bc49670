package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/jwks"
	"github.com/stint-dev/stint/internal/store"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testEnv struct {
	st     store.Store
	sealer *Sealer
	clock  *clock
}

func newEnv(t testing.TB) *testEnv {
	return &testEnv{st: newTestStore(t), sealer: testSealer(t, 3), clock: newClock()}
}

// manager starts a Manager on env; background reload is off unless o asks.
func (env *testEnv) manager(t testing.TB, o Options) *Manager {
	t.Helper()
	if o.Now == nil {
		o.Now = env.clock.Now
	}
	if o.Reload == 0 {
		o.Reload = -1
	}
	m, err := NewManager(context.Background(), env.st, env.sealer, o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

type testClaims struct {
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
}

// verify checks a compact JWS the way a relying party does: algorithm
// allow-list, kid looked up in the published set, signature.
func verify(t testing.TB, set jose.JSONWebKeySet, token, alg string) (jose.Header, []byte, error) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return jose.Header{}, nil, err
	}
	h := jws.Signatures[0].Protected
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return h, nil, errors.New("kid not in the published set")
	}
	payload, err := jws.Verify(keys[0])
	return h, payload, err
}

func TestFirstStartGeneratesOneCurrentKey(t *testing.T) {
	env := newEnv(t)
	m := env.manager(t, Options{})
	kid, alg := m.Current()
	if kid == "" || alg != "ES256" {
		t.Fatalf("Current() = %q, %q; want a kid and ES256", kid, alg)
	}
	recs, err := env.st.ListKeys(context.Background(), PurposeSigning)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != kid || !recs[0].NotAfter.IsZero() {
		t.Fatalf("store holds %+v, want one open key %s", recs, kid)
	}
	// A second start on the same store reuses the key.
	again := env.manager(t, Options{})
	if k2, _ := again.Current(); k2 != kid {
		t.Fatalf("restart picked %s, want the stored %s", k2, kid)
	}
	infos, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].Current || !infos[0].Published || infos[0].KID != kid {
		t.Fatalf("List = %+v", infos)
	}
}

func TestSignVerifiesAgainstJWKS(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			env := newEnv(t)
			m := env.manager(t, Options{Algorithm: alg})
			claims := testClaims{Sub: "spiffe://example.org/bot", Aud: "stint", Exp: 1893456000}
			for _, typ := range []string{"JWT", "at+jwt"} {
				var tok string
				var err error
				if typ == "JWT" {
					tok, err = m.Sign(claims)
				} else {
					tok, err = m.SignWithType(claims, typ)
				}
				if err != nil {
					t.Fatalf("sign: %v", err)
				}
				h, payload, err := verify(t, m.JWKS(), tok, alg)
				if err != nil {
					t.Fatalf("verify %s token: %v", typ, err)
				}
				kid, _ := m.Current()
				if h.KeyID != kid || h.Algorithm != alg || h.ExtraHeaders[jose.HeaderType] != typ {
					t.Fatalf("header = kid %q alg %q typ %v; want %q %q %q", h.KeyID, h.Algorithm, h.ExtraHeaders[jose.HeaderType], kid, alg, typ)
				}
				var got testClaims
				if err := json.Unmarshal(payload, &got); err != nil || got != claims {
					t.Fatalf("payload %s, want %+v", payload, claims)
				}
			}
			for _, k := range m.JWKS().Keys {
				if !k.IsPublic() {
					t.Fatal("JWKS holds private key material")
				}
				if k.Algorithm != alg || k.Use != "sig" {
					t.Fatalf("JWKS key alg %q use %q", k.Algorithm, k.Use)
				}
			}
			// A token signed with another algorithm's key must not verify.
			other := newEnv(t).manager(t, Options{Algorithm: alg})
			forged, _ := other.Sign(claims)
			if _, _, err := verify(t, m.JWKS(), forged, alg); err == nil {
				t.Fatal("token from another installation verified")
			}
		})
	}
}

func TestNewManagerRejectsUnknownAlgorithm(t *testing.T) {
	env := newEnv(t)
	for _, alg := range []string{"HS256", "none", "ES384", "es256"} {
		if _, err := NewManager(context.Background(), env.st, env.sealer, Options{Algorithm: alg, Reload: -1}); err == nil {
			t.Errorf("NewManager accepted algorithm %q", alg)
		}
	}
}

func TestRotateKeepsOldKeyUntilNotAfter(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	const maxTTL = time.Hour
	m := env.manager(t, Options{TokenMaxTTL: maxTTL})
	oldKID, _ := m.Current()
	oldTok, err := m.Sign(testClaims{Sub: "a"})
	if err != nil {
		t.Fatal(err)
	}
	newKID, err := m.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if cur, _ := m.Current(); cur != newKID || newKID == oldKID {
		t.Fatalf("after Rotate current = %s, rotated to %s, old %s", cur, newKID, oldKID)
	}
	newTok, _ := m.Sign(testClaims{Sub: "b"})
	if h, _, err := verify(t, m.JWKS(), newTok, "ES256"); err != nil || h.KeyID != newKID {
		t.Fatalf("new token: kid %s, err %v", h.KeyID, err)
	}

	tests := []struct {
		name      string
		advance   time.Duration // from the rotation
		oldValid  bool
		jwksCount int
	}{
		{"right after rotation", 0, true, 2},
		{"at max ttl, within skew", maxTTL, true, 2},
		{"just before not_after", maxTTL + retireSkew - time.Second, true, 2},
		{"after not_after", maxTTL + retireSkew + time.Second, false, 1},
	}
	start := env.clock.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Add(start.Add(tt.advance).Sub(env.clock.Now()))
			set := m.JWKS()
			if len(set.Keys) != tt.jwksCount {
				t.Fatalf("JWKS has %d keys, want %d", len(set.Keys), tt.jwksCount)
			}
			_, _, verr := verify(t, set, oldTok, "ES256")
			_, kerr := m.Key(ctx, oldKID)
			if tt.oldValid && (verr != nil || kerr != nil) {
				t.Fatalf("old key should verify: verify %v, Key %v", verr, kerr)
			}
			if !tt.oldValid && (verr == nil || !errors.Is(kerr, ErrUnknownKey)) {
				t.Fatalf("old key should be gone: verify %v, Key %v", verr, kerr)
			}
			if _, err := m.Key(ctx, newKID); err != nil {
				t.Fatalf("current key not found: %v", err)
			}
		})
	}
	infos, err := m.List(ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("List: %v %+v", err, infos)
	}
	if infos[0].KID != newKID || !infos[0].Current || infos[1].Current || infos[1].Published ||
		!infos[1].NotAfter.Equal(start.Add(maxTTL+retireSkew)) {
		t.Fatalf("List = %+v", infos)
	}
}

func TestKeyUnknownKid(t *testing.T) {
	env := newEnv(t)
	m := env.manager(t, Options{})
	if _, err := m.Key(context.Background(), "no-such-kid"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key(unknown) = %v, want ErrUnknownKey", err)
	}
}

func TestReplicasAgreeAfterRotation(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	a := env.manager(t, Options{})
	b := env.manager(t, Options{Reload: 20 * time.Millisecond})
	c := env.manager(t, Options{}) // no background reload: relies on Key's reload on miss
	newKID, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := a.Sign(testClaims{Sub: "x"})

	// c has not reloaded, yet a token with the new kid verifies through Key.
	k, err := c.Key(ctx, newKID)
	if err != nil {
		t.Fatalf("replica without reload cannot find the new kid: %v", err)
	}
	if _, _, err := verify(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}}, tok, "ES256"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := c.Current(); cur != newKID {
		t.Fatalf("reload on miss did not move c to the new current key")
	}

	// b picks the rotation up on its own.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cur, _ := b.Current(); cur == newKID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background reload never picked up the rotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	btok, _ := b.Sign(testClaims{Sub: "y"})
	if _, _, err := verify(t, a.JWKS(), btok, "ES256"); err != nil {
		t.Fatalf("token from replica b does not verify with a's JWKS: %v", err)
	}
}

func TestConcurrentFirstStartConverges(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	const n = 4
	ms := make([]*Manager, n)
	toks := make([]string, n)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			m, err := NewManager(ctx, env.st, env.sealer, Options{Now: env.clock.Now, Reload: -1})
			if err != nil {
				t.Error(err)
				return
			}
			ms[i] = m
			toks[i], _ = m.Sign(testClaims{Sub: "early"})
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range ms {
		defer m.Close()
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := ms[0].Current()
	for i, m := range ms {
		if cur, _ := m.Current(); cur != want {
			t.Fatalf("replica %d uses %s, replica 0 uses %s", i, cur, want)
		}
		// Tokens signed before convergence stay verifiable.
		for j, tok := range toks {
			if _, _, err := verify(t, m.JWKS(), tok, "ES256"); err != nil {
				t.Fatalf("replica %d rejects early token of replica %d: %v", i, j, err)
			}
		}
	}
}

func TestSignerSharedAcrossManagers(t *testing.T) {
	ctx := context.Background()
	kinds := []struct {
		kind string
		pub  func(crypto.PublicKey) bool
	}{
		{KindEd25519, func(p crypto.PublicKey) bool { _, ok := p.(ed25519.PublicKey); return ok }},
		{KindECDSAP256, func(p crypto.PublicKey) bool { _, ok := p.(*ecdsa.PublicKey); return ok }},
		{KindRSA2048, func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 }},
	}
	for _, tt := range kinds {
		t.Run(tt.kind, func(t *testing.T) {
			env := newEnv(t)
			a, b := env.manager(t, Options{}), env.manager(t, Options{})
			var sa, sb crypto.Signer
			var ea, eb error
			var wg sync.WaitGroup
			wg.Go(func() { sa, ea = a.Signer(ctx, "ssh-ca:prod", tt.kind) })
			wg.Go(func() { sb, eb = b.Signer(ctx, "ssh-ca:prod", tt.kind) })
			wg.Wait()
			if ea != nil || eb != nil {
				t.Fatalf("Signer: %v / %v", ea, eb)
			}
			if !tt.pub(sa.Public()) {
				t.Fatalf("Signer returned a %T", sa.Public())
			}
			type eq interface{ Equal(crypto.PublicKey) bool }
			if !sa.Public().(eq).Equal(sb.Public()) {
				t.Fatal("two managers racing on first use got different keys")
			}
			// A fresh manager (no cache) loads the same key from the store.
			c := env.manager(t, Options{})
			sc, err := c.Signer(ctx, "ssh-ca:prod", tt.kind)
			if err != nil || !sa.Public().(eq).Equal(sc.Public()) {
				t.Fatalf("third manager: %v, same key: %v", err, err == nil && sa.Public().(eq).Equal(sc.Public()))
			}
			// Another purpose gets another key.
			other, err := a.Signer(ctx, "x509-ca:mesh", tt.kind)
			if err != nil || sa.Public().(eq).Equal(other.Public()) {
				t.Fatalf("other purpose: %v, shares key", err)
			}
			// The signing key set is untouched.
			if len(a.JWKS().Keys) != 1 {
				t.Fatal("Signer added a key to the JWKS")
			}
		})
	}
}

func TestSignerRejects(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	m := env.manager(t, Options{})
	if _, err := m.Signer(ctx, "audit", KindEd25519); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, purpose, kind string
	}{
		{"kind differs from the cached key", "audit", KindECDSAP256},
		{"unknown kind", "ssh-ca:x", "dsa-1024"},
		{"reserved purpose", PurposeSigning, KindEd25519},
		{"empty purpose", "", KindEd25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Signer(ctx, tt.purpose, tt.kind); err == nil {
				t.Fatal("Signer accepted")
			}
		})
	}
	// The kind check holds for a manager reading the stored key too.
	fresh := env.manager(t, Options{})
	if _, err := fresh.Signer(ctx, "audit", KindRSA2048); err == nil {
		t.Fatal("fresh manager returned a stored ed25519 key as rsa-2048")
	}
}

func TestSecret(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	a, b := env.manager(t, Options{}), env.manager(t, Options{})
	sa, err := a.Secret(ctx, "audit-hmac")
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) != SecretSize || bytes.Equal(sa, make([]byte, SecretSize)) {
		t.Fatalf("secret %d bytes or zero", len(sa))
	}
	sb, err := b.Secret(ctx, "audit-hmac")
	if err != nil || !bytes.Equal(sa, sb) {
		t.Fatalf("second manager: %v, equal %v", err, bytes.Equal(sa, sb))
	}
	sa[0] ^= 0xff // callers own their copy
	again, _ := a.Secret(ctx, "audit-hmac")
	if !bytes.Equal(again, sb) {
		t.Fatal("mutating a returned secret changed the cached one")
	}
	other, _ := a.Secret(ctx, "other")
	if bytes.Equal(other, sb) {
		t.Fatal("two secret names share bytes")
	}
}

func TestStoredRecordsAreBound(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	m := env.manager(t, Options{})
	if _, err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ := env.st.ListKeys(ctx, PurposeSigning)
	cur, old := recs[0], recs[1]
	if cur.NotAfter.IsZero() == old.NotAfter.IsZero() {
		t.Fatal("expected one current and one retired record")
	}
	if !cur.NotAfter.IsZero() {
		cur, old = old, cur
	}
	tests := []struct {
		name   string
		mutate func(r *store.KeyRecord)
	}{
		{"private blob of another key", func(r *store.KeyRecord) { r.Private = old.Private }},
		{"public key of another key", func(r *store.KeyRecord) {
			var jwk jose.JSONWebKey
			_ = jwk.UnmarshalJSON(old.Public)
			jwk.KeyID = r.ID
			r.Public, _ = jwk.MarshalJSON()
		}},
		{"algorithm relabelled", func(r *store.KeyRecord) { r.Algorithm = "RS256" }},
		{"sealed bytes flipped", func(r *store.KeyRecord) { r.Private = bytes.Clone(r.Private); r.Private[20] ^= 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newTestStore(t)
			for _, r := range []store.KeyRecord{cur, old} {
				if r.ID == cur.ID {
					tt.mutate(&r)
				}
				if err := st.PutKey(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := NewManager(ctx, st, env.sealer, Options{Now: env.clock.Now, Reload: -1}); err == nil {
				t.Fatal("NewManager loaded a tampered current key")
			}
		})
	}
	t.Run("wrong kek", func(t *testing.T) {
		_, err := NewManager(ctx, env.st, testSealer(t, 4), Options{Now: env.clock.Now, Reload: -1})
		if !errors.Is(err, ErrOpen) {
			t.Fatalf("NewManager with another kek: %v, want ErrOpen", err)
		}
	})
}

// TestNoPrivateMaterialInClear searches every byte the store holds for
// every private key and secret in the forms a leak would take.
func TestNoPrivateMaterialInClear(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	kekPath := filepath.Join(t.TempDir(), "kek")
	var err error
	if env.sealer, err = OpenSealer(ctx, env.st, kekPath); err != nil {
		t.Fatal(err)
	}
	kek, err := LoadKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	var privs []crypto.Signer
	secrets := [][]byte{kek}
	// One store, several algorithms: each manager rotates to its own.
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		m := env.manager(t, Options{Algorithm: alg})
		if _, err := m.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		privs = append(privs, m.state.Load().current.priv)
	}
	m := env.manager(t, Options{})
	for _, k := range []string{KindEd25519, KindECDSAP256, KindRSA2048} {
		s, err := m.Signer(ctx, "ca:"+k, k)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, s)
	}
	sec, err := m.Secret(ctx, "audit-hmac")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, sec)

	all := dump(t, env.st)
	if len(all) == 0 {
		t.Fatal("store dump is empty")
	}
	for _, p := range privs {
		der, err := x509.MarshalPKCS8PrivateKey(p)
		if err != nil {
			t.Fatal(err)
		}
		pemText := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		needles := map[string][]byte{
			"pkcs8 der":     der,
			"pem body line": bytes.Split(pemText, []byte("\n"))[1],
			"base64 der":    []byte(base64.StdEncoding.EncodeToString(der)[:40]),
		}
		switch k := p.(type) {
		case *ecdsa.PrivateKey:
			d, _ := k.Bytes()
			needles["ecdsa scalar"] = d
			needles["jwk d"] = []byte(base64.RawURLEncoding.EncodeToString(d))
		case ed25519.PrivateKey:
			needles["ed25519 seed"] = k.Seed()
			needles["jwk d"] = []byte(base64.RawURLEncoding.EncodeToString(k.Seed()))
		case *rsa.PrivateKey:
			needles["rsa d"] = k.D.Bytes()
			needles["rsa p"] = k.Primes[0].Bytes()
		}
		for name, n := range needles {
			if len(n) < 16 {
				t.Fatalf("needle %s too short to mean anything", name)
			}
			if bytes.Contains(all, n) {
				t.Errorf("store holds the %s of a %T in clear", name, p)
			}
		}
	}
	for _, s := range secrets {
		if bytes.Contains(all, s) || bytes.Contains(all, []byte(base64.StdEncoding.EncodeToString(s))) {
			t.Error("store holds a secret or the kek in clear")
		}
	}
}

// TestLosingFirstKeyStaysPublished covers replicas that both wrote a first
// key: the older one is never retired explicitly, yet tokens it signed must
// verify until TokenMaxTTL after the newer key appeared, and not after.
func TestLosingFirstKeyStaysPublished(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	const maxTTL = 10 * time.Minute
	a := env.manager(t, Options{TokenMaxTTL: maxTTL})
	aKID, _ := a.Current()
	early, _ := a.Sign(testClaims{Sub: "early"})

	// Replica b wrote its own first key a moment later, unseen by a.
	env.clock.Add(time.Second)
	other := &testEnv{st: newTestStore(t), sealer: env.sealer, clock: env.clock}
	b := other.manager(t, Options{TokenMaxTTL: maxTTL})
	bRecs, _ := other.st.ListKeys(ctx, PurposeSigning)
	if err := env.st.PutKey(ctx, bRecs[0]); err != nil {
		t.Fatal(err)
	}
	bKID, _ := b.Current()
	bornB := env.clock.Now()

	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, _ := a.Current(); cur != bKID {
		t.Fatalf("after reload a uses %s, want the newer %s", cur, bKID)
	}
	tests := []struct {
		name  string
		at    time.Time
		valid bool
	}{
		{"right after the newer key", bornB, true},
		{"within max ttl plus skew", bornB.Add(maxTTL + retireSkew - time.Second), true},
		{"past max ttl plus skew", bornB.Add(maxTTL + retireSkew + time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Add(tt.at.Sub(env.clock.Now()))
			_, _, err := verify(t, a.JWKS(), early, "ES256")
			if tt.valid != (err == nil) {
				t.Fatalf("early token of %s: verify err %v, want valid=%v", aKID, err, tt.valid)
			}
		})
	}
}

// countingStore counts ListKeys calls.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	lists int
}

func (c *countingStore) ListKeys(ctx context.Context, purpose string) ([]store.KeyRecord, error) {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Store.ListKeys(ctx, purpose)
}

func (c *countingStore) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists
}

func TestUnknownKidReloadsAtMostOncePerSecond(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	cs := &countingStore{Store: env.st}
	env.st = cs
	m := env.manager(t, Options{})
	before := cs.count()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := m.Key(ctx, "made-up-"+string(rune('a'+i%26))); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Key: %v", err)
			}
		})
	}
	wg.Wait()
	if got := cs.count() - before; got != 1 {
		t.Fatalf("50 unknown kids caused %d store reads, want 1", got)
	}
}

func TestSignConcurrentWithRotate(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	m := env.manager(t, Options{})
	var (
		mu   sync.Mutex
		toks []string
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for range 25 {
				tok, err := m.SignWithType(testClaims{Sub: "c"}, "at+jwt")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				toks = append(toks, tok)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, err := m.Rotate(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	set := m.JWKS()
	if len(set.Keys) != 4 {
		t.Fatalf("JWKS has %d keys after 3 rotations, want 4", len(set.Keys))
	}
	for _, tok := range toks {
		if _, _, err := verify(t, set, tok, "ES256"); err != nil {
			t.Fatalf("token signed during rotation does not verify: %v", err)
		}
	}
}

func TestKeyErrorIsJWKSUnknownKID(t *testing.T) {
	m := newEnv(t).manager(t, Options{})
	if _, err := m.Key(context.Background(), "nope"); !errors.Is(err, jwks.ErrUnknownKID) {
		t.Fatalf("Key error %v does not wrap jwks.ErrUnknownKID", err)
	}
}

func TestRetiredKeyOutlivesOtherReplicasReload(t *testing.T) {
	env := newEnv(t)
	m := env.manager(t, Options{TokenMaxTTL: time.Hour, Reload: 5 * time.Minute})
	start := env.clock.Now()
	if _, err := m.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	infos, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := start.Add(time.Hour + retireSkew + 5*time.Minute)
	if len(infos) != 2 || !infos[1].NotAfter.Equal(want) {
		t.Fatalf("retired key NotAfter %v, want %v", infos[1].NotAfter, want)
	}
}
