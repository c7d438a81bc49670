// Package devcluster is the demo identity side of `stint dev`: a local
// "dev cluster" that mints Kubernetes-shaped service-account tokens and a
// "dev SSO" that mints human OIDC tokens, each with its own key and JWKS
// file, so stint verifies them exactly as it verifies real ones.
package devcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
)

// Issuers of the demo identity providers.
const (
	ClusterIssuer = "https://dev-cluster.stint.local"
	SSOIssuer     = "https://dev-sso.stint.local"
	Audience      = "stint"
)

// issuer is one demo token issuer: a key, its file names and algorithm.
type issuer struct {
	name string
	alg  jose.SignatureAlgorithm
	gen  func() (crypto.Signer, error)
}

var (
	cluster = issuer{"dev-cluster", jose.RS256, func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }}
	sso     = issuer{"dev-sso", jose.ES256, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }}
)

// JWKSFile is where the public keys of the named issuer are written.
func JWKSFile(dir, name string) string { return filepath.Join(dir, name+"-jwks.json") }

func keyFile(dir, name string) string { return filepath.Join(dir, name+"-key.pem") }

// Init creates the demo issuers' keys and JWKS files in dir, keeping any
// that exist so tokens minted earlier stay valid.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devcluster: %w", err)
	}
	for _, is := range []issuer{cluster, sso} {
		if _, err := os.Stat(keyFile(dir, is.name)); err == nil {
			continue
		}
		k, err := is.gen()
		if err != nil {
			return fmt.Errorf("devcluster: generate %s key: %w", is.name, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fmt.Errorf("devcluster: %w", err)
		}
		if err := os.WriteFile(keyFile(dir, is.name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return fmt.Errorf("devcluster: %w", err)
		}
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: kid(k), Algorithm: string(is.alg), Use: "sig"}}}
		b, _ := json.MarshalIndent(set, "", "  ")
		if err := os.WriteFile(JWKSFile(dir, is.name), b, 0o644); err != nil {
			return fmt.Errorf("devcluster: %w", err)
		}
	}
	return nil
}

func kid(k crypto.Signer) string {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

func load(dir string, is issuer) (jose.Signer, error) {
	b, err := os.ReadFile(keyFile(dir, is.name))
	if err != nil {
		return nil, fmt.Errorf("devcluster: %w (is `stint dev` running with this --dir?)", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("devcluster: key file is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	signer := k.(crypto.Signer)
	return jose.NewSigner(jose.SigningKey{Algorithm: is.alg, Key: jose.JSONWebKey{Key: signer, KeyID: kid(signer)}},
		(&jose.SignerOptions{}).WithType("JWT"))
}

// Workload describes a demo service account.
type Workload struct {
	Namespace      string
	ServiceAccount string
	TTL            time.Duration
	Now            time.Time
}

// MintWorkload returns a projected service-account token for w, shaped
// like the ones the Kubernetes API server issues.
func MintWorkload(dir string, w Workload) (string, error) {
	s, err := load(dir, cluster)
	if err != nil {
		return "", err
	}
	now := w.Now
	if now.IsZero() {
		now = time.Now()
	}
	if w.TTL == 0 {
		w.TTL = time.Hour
	}
	claims := map[string]any{
		"iss": ClusterIssuer, "sub": "system:serviceaccount:" + w.Namespace + ":" + w.ServiceAccount,
		"aud": []string{Audience}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(w.TTL).Unix(), "jti": uuid.NewString(),
		"kubernetes.io": map[string]any{
			"namespace":      w.Namespace,
			"serviceaccount": map[string]string{"name": w.ServiceAccount, "uid": uuid.NewSHA1(uuid.NameSpaceURL, []byte(w.Namespace+"/"+w.ServiceAccount)).String()},
			"pod":            map[string]string{"name": w.ServiceAccount + "-7d9f8-x2k4p", "uid": uuid.NewString()},
			"node":           map[string]string{"name": "dev-node-1", "uid": uuid.NewSHA1(uuid.NameSpaceURL, []byte("dev-node-1")).String()},
		},
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}

// Human describes a demo user of the dev SSO.
type Human struct {
	User   string
	Email  string
	Groups []string
	TTL    time.Duration
	Now    time.Time
}

// MintHuman returns an OIDC ID token for h from the dev SSO.
func MintHuman(dir string, h Human) (string, error) {
	s, err := load(dir, sso)
	if err != nil {
		return "", err
	}
	now := h.Now
	if now.IsZero() {
		now = time.Now()
	}
	if h.TTL == 0 {
		h.TTL = time.Hour
	}
	if h.Email == "" {
		h.Email = h.User + "@example.com"
	}
	claims := map[string]any{
		"iss": SSOIssuer, "sub": h.User, "aud": []string{Audience}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(h.TTL).Unix(), "jti": uuid.NewString(), "email": h.Email, "email_verified": true,
		"name": h.User, "groups": h.Groups,
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}
