package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// Key kinds accepted by Manager.Signer.
const (
	KindEd25519   = "ed25519"
	KindECDSAP256 = "ecdsa-p256"
	KindRSA2048   = "rsa-2048"
	KindRSA3072   = "rsa-3072"
	KindRSA4096   = "rsa-4096"
)

// SecretSize is the size of the secrets Manager.Secret returns.
const SecretSize = 32

// generate makes a new private key of a kind.
func generate(kind string) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case KindEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case KindECDSAP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KindRSA2048, KindRSA3072, KindRSA4096:
		bits, _ := strconv.Atoi(strings.TrimPrefix(kind, "rsa-"))
		k, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("keys: unsupported key kind %q (want ed25519, ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096)", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", kind, err)
	}
	return k, nil
}

// kindOf names the kind of a public key, "" when stint does not make it.
func kindOf(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return KindEd25519
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return KindECDSAP256
		}
	case *rsa.PublicKey:
		return "rsa-" + strconv.Itoa(p.N.BitLen())
	}
	return ""
}

// recordAAD binds a sealed private key to its record: moving the blob to
// another kid or purpose makes it fail to open.
func recordAAD(purpose, kid string) []byte {
	return []byte(purpose + "/" + kid)
}

// newRecord seals priv as PKCS#8 under the KEK. The kid is the RFC 7638
// thumbprint of the public key, so it is unique and checkable. jwsAlg goes
// into the public JWK when the key signs JWTs.
func (m *Manager) newRecord(purpose, alg, jwsAlg string, priv crypto.Signer) (store.KeyRecord, error) {
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: jwsAlg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return store.KeyRecord{}, fmt.Errorf("keys: thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return store.KeyRecord{}, fmt.Errorf("keys: marshal public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.KeyRecord{}, fmt.Errorf("keys: marshal private key: %w", err)
	}
	sealed, err := m.sealer.Seal(der, recordAAD(purpose, jwk.KeyID))
	clear(der)
	if err != nil {
		return store.KeyRecord{}, err
	}
	return store.KeyRecord{
		ID: jwk.KeyID, Purpose: purpose, Algorithm: alg,
		Private: sealed, Public: pub, CreatedAt: m.o.Now().UTC(),
	}, nil
}

// parsePublic reads a record's public JWK, refusing private material and
// a kid that disagrees with the record.
func parsePublic(r store.KeyRecord) (jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(r.Public); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: public key of %s: %w", r.ID, err)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return jose.JSONWebKey{}, fmt.Errorf("keys: public key of %s is not a valid public key", r.ID)
	}
	if jwk.KeyID != r.ID {
		return jose.JSONWebKey{}, fmt.Errorf("keys: public key of %s names kid %q", r.ID, jwk.KeyID)
	}
	return jwk, nil
}

// unseal opens a record's private key and checks it matches the public key
// stored beside it, so the JWKS always publishes the key that signs.
func (m *Manager) unseal(r store.KeyRecord, pub jose.JSONWebKey) (crypto.Signer, error) {
	der, err := m.sealer.Open(r.Private, recordAAD(r.Purpose, r.ID))
	if err != nil {
		return nil, fmt.Errorf("keys: private key %s (%s): %w", r.ID, r.Purpose, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		// The parse error describes structure, never key bytes.
		return nil, fmt.Errorf("keys: private key %s: %w", r.ID, err)
	}
	priv, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: private key %s is a %T, not a signer", r.ID, k)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := priv.Public().(equaler); !ok || !e.Equal(pub.Key) {
		return nil, fmt.Errorf("keys: private key %s does not match its public key", r.ID)
	}
	return priv, nil
}

// Signer returns the private key for a purpose (for example
// "ssh-ca:prod" or "x509-ca:mesh"), generating and storing it sealed on
// first use. kind is one of the Kind constants and must match the stored
// key. Replicas racing on first use agree through a write-once meta record
// naming the winning kid.
func (m *Manager) Signer(ctx context.Context, purpose, kind string) (crypto.Signer, error) {
	if purpose == "" || purpose == PurposeSigning {
		return nil, fmt.Errorf("keys: signer purpose %q is reserved or empty", purpose)
	}
	m.otherMu.Lock()
	defer m.otherMu.Unlock()
	if k, ok := m.signers[purpose]; ok {
		if k.kind != kind {
			return nil, fmt.Errorf("keys: %s key is %s, not %s", purpose, k.kind, kind)
		}
		return k.signer, nil
	}
	metaKey := "keys/signer/" + purpose
	kid, err := m.st.GetMeta(ctx, metaKey)
	if errors.Is(err, core.ErrNotFound) {
		kid, err = m.createOther(ctx, purpose, kind, metaKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s key: %w", purpose, err)
	}
	recs, err := m.st.ListKeys(ctx, purpose)
	if err != nil {
		return nil, fmt.Errorf("keys: list %s keys: %w", purpose, err)
	}
	for _, r := range recs {
		if r.ID != string(kid) {
			continue
		}
		if r.Algorithm != kind {
			return nil, fmt.Errorf("keys: %s key is %s, not %s", purpose, r.Algorithm, kind)
		}
		pub, err := parsePublic(r)
		if err != nil {
			return nil, err
		}
		priv, err := m.unseal(r, pub)
		if err != nil {
			return nil, err
		}
		if got := kindOf(priv.Public()); got != kind {
			return nil, fmt.Errorf("keys: %s key is %s, recorded as %s", purpose, got, kind)
		}
		m.signers[purpose] = otherKey{kind: kind, signer: priv}
		return priv, nil
	}
	return nil, fmt.Errorf("keys: %s key %s is named in meta but not stored", purpose, kid)
}

// createOther stores a new key, then claims the purpose for it unless
// another replica got there first; it returns the winning kid. The key is
// written before the claim so a crash between leaves only an unused record.
func (m *Manager) createOther(ctx context.Context, purpose, kind, metaKey string) ([]byte, error) {
	priv, err := generate(kind)
	if err != nil {
		return nil, err
	}
	rec, err := m.newRecord(purpose, kind, "", priv)
	if err != nil {
		return nil, err
	}
	if err := m.st.PutKey(ctx, rec); err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	return m.st.PutMetaIfAbsent(ctx, metaKey, []byte(rec.ID))
}

// Secret returns a 32-byte per-installation secret (for example the audit
// HMAC key), generated once and stored sealed in the store's meta records.
// Every replica gets the same bytes. The caller gets its own copy.
func (m *Manager) Secret(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("keys: secret name is empty")
	}
	m.otherMu.Lock()
	defer m.otherMu.Unlock()
	if s, ok := m.secrets[name]; ok {
		return append([]byte(nil), s...), nil
	}
	metaKey := "keys/secret/" + name
	aad := []byte("secret/" + name)
	sealed, err := m.st.GetMeta(ctx, metaKey)
	if errors.Is(err, core.ErrNotFound) {
		fresh := make([]byte, SecretSize)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("keys: generate secret: %w", err)
		}
		s, serr := m.sealer.Seal(fresh, aad)
		clear(fresh)
		if serr != nil {
			return nil, serr
		}
		sealed, err = m.st.PutMetaIfAbsent(ctx, metaKey, s)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: secret %s: %w", name, err)
	}
	secret, err := m.sealer.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("keys: secret %s: %w", name, err)
	}
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("keys: secret %s has %d bytes, want %d", name, len(secret), SecretSize)
	}
	m.secrets[name] = secret
	return append([]byte(nil), secret...), nil
}
