// Package jwks fetches, caches and refreshes the public keys that verify
// JWTs: from a file, a JWKS URL, or an issuer's OIDC discovery document.
//
// A Cache loads its keys once at start and afterwards refreshes them when a
// token names an unknown kid (so a key rotation is picked up at once) or when
// the set is older than MaxAge. Refreshes never run more often than
// MinRefresh, concurrent misses share one fetch, and a failed refresh keeps
// the old set: an issuer outage must not turn into an outage of stint.
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
)

// KeySource returns the public verification key a token's kid names.
// Implementations: *Cache here, and stint's own key manager for the tokens
// stint signs.
type KeySource interface {
	// Key returns the public key with this kid, or an error wrapping
	// ErrUnknownKID when no such key is known (after any refresh the source
	// chose to make). The returned key holds a public key only.
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// ErrUnknownKID is wrapped by Key when the set has no key with the kid.
var ErrUnknownKID = errors.New("jwks: unknown kid")

// minRSABits is the smallest RSA modulus accepted; shorter keys are
// factorable and a JWKS offering one is skipped key by key.
const minRSABits = 2048

// parseSet decodes a JWKS document into a map by kid. Keys stint cannot use
// (unknown key types, encryption keys, keys without kid, weak RSA) are
// skipped so one exotic key does not break a whole provider; private or
// symmetric keys fail the whole set, because publishing them means the
// issuer is misconfigured and its keys may be compromised.
func parseSet(data []byte) (map[string]jose.JSONWebKey, error) {
	var doc struct {
		Keys []josejson.RawMessage `json:"keys"`
	}
	if err := josejson.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: decode key set: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(doc.Keys))
	for i, raw := range doc.Keys {
		if err := rejectSecretMaterial(raw); err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue // unsupported or malformed key: unusable, not dangerous
		}
		if err := checkKey(k); err != nil {
			if errors.Is(err, errSecret) {
				return nil, fmt.Errorf("jwks: key %d: %w", i, err)
			}
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			return nil, fmt.Errorf("jwks: duplicate kid %q", k.KeyID)
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: key set has no usable signing key")
	}
	return keys, nil
}

var errSecret = errors.New("private or symmetric key material in a public key set")

// rejectSecretMaterial looks at the raw members before go-jose parses the key,
// so that a set with a private or symmetric key is refused even when the key
// would not parse.
func rejectSecretMaterial(raw []byte) error {
	var m struct {
		Kty string `json:"kty"`
		D   any    `json:"d"`
		K   any    `json:"k"`
		P   any    `json:"p"`
		Q   any    `json:"q"`
	}
	if err := josejson.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if m.Kty == "oct" || m.D != nil || m.K != nil || m.P != nil || m.Q != nil {
		return errSecret
	}
	return nil
}

// checkKey accepts only public signing keys of the families stint verifies.
func checkKey(k jose.JSONWebKey) error {
	if !k.Valid() {
		return errors.New("invalid key")
	}
	if !k.IsPublic() {
		return errSecret
	}
	if k.KeyID == "" {
		return errors.New("key has no kid")
	}
	if k.Use != "" && k.Use != "sig" {
		return errors.New("key is not for signatures")
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return errors.New("rsa key too short")
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return errors.New("unsupported curve")
		}
	case ed25519.PublicKey:
	default:
		return errors.New("unsupported key type")
	}
	return nil
}

// PublicSet filters set to the keys a verifier may use, turning private
// asymmetric keys into their public halves and dropping symmetric or
// unusable ones. NewStatic uses it; it is exported for key managers that
// hold private keys and publish the public half.
func PublicSet(set jose.JSONWebKeySet) map[string]jose.JSONWebKey {
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if !k.IsPublic() {
			k = k.Public() // zero key for symmetric keys, which checkKey drops
		}
		if checkKey(k) != nil {
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			continue // first wins, as in the order the set was built
		}
		keys[k.KeyID] = k
	}
	return keys
}
