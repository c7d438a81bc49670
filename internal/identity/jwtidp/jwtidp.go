// Package jwtidp verifies JWT identity tokens (compact JWS) from one issuer
// and turns their claims into a core.Principal through a profile chosen by
// the provider type: kubernetes, oidc, github-actions, gitlab-ci, gcp,
// azure, and stint for stint's own session tokens.
//
// Verification is strict (see identity.TokenError for the reasons): only
// compact JWS, at most identity.MaxTokenSize bytes, an asymmetric algorithm
// from the allowed list that matches the key's type and the key's own alg,
// no header that brings or points to a key (jku, x5u, x5c, jwk), no crit,
// a kid known to the key source, the configured iss, an expected aud, and
// exp (required), nbf and iat within Skew.
//
// # Claims of stint session tokens (type "stint")
//
// stint's token issuer writes, and this package reads back:
//
//	iss             stint's issuer URL
//	sub             the principal's Subject
//	aud, exp, iat, nbf, jti   as usual; jti becomes TokenID
//	stint_provider  Principal.Provider of the original identity (string, required)
//	stint_kind      Principal.Kind of the original identity (string, required)
//	stint_attrs     Principal.Attributes (JSON object; optional)
//	act             RFC 8693 actor, nested: an object with sub, iss (optional),
//	                stint_provider, stint_kind, stint_attrs and its own act;
//	                at most 8 levels deep. Becomes Principal.Actor.
//
// The restored principal's Issuer is the stint token's iss.
package jwtidp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/jwks"
)

// DefaultSkew is the clock skew tolerated for exp, nbf and iat.
const DefaultSkew = 60 * time.Second

// DefaultAlgorithms are accepted when Config.Algorithms is empty.
var DefaultAlgorithms = []string{"RS256", "ES256", "ES384", "PS256", "EdDSA"}

// Config configures one JWT identity provider.
type Config struct {
	// Name is the provider name; Type picks the profile (see Types).
	Name, Type string
	// Issuer is the exact iss accepted.
	Issuer string
	// Audiences lists accepted aud values; a token must carry one. Required.
	Audiences []string
	// Keys resolves a kid to a public key.
	Keys jwks.KeySource
	// Algorithms accepted; default DefaultAlgorithms. Only asymmetric
	// algorithms are allowed; none and HMAC are configuration errors.
	Algorithms []string
	// Attributes are added to every principal and win over claims.
	Attributes map[string]string
	// ClaimAttributes maps attribute name to claim path ("a.b" for nested)
	// for any profile; they win over the profile's own attributes.
	ClaimAttributes map[string]string
	// SubjectClaim names the claim that becomes Subject; default "sub".
	SubjectClaim string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Skew tolerated on exp, nbf and iat; default 60 s.
	Skew time.Duration
}

// Verifier verifies the tokens of one provider. It is safe for concurrent
// use and holds no per-call state.
type Verifier struct {
	cfg     Config
	algs    []jose.SignatureAlgorithm
	profile profile
	attrs   map[string]any
}

// asymmetric lists every algorithm that may be configured, with the key
// check for it: the token's alg must fit the key's type, not only the
// key's alg member, so an RSA key can never verify an ES256 token.
var asymmetric = map[jose.SignatureAlgorithm]func(any) bool{
	jose.RS256: isRSA, jose.RS384: isRSA, jose.RS512: isRSA,
	jose.PS256: isRSA, jose.PS384: isRSA, jose.PS512: isRSA,
	jose.ES256: isCurve(elliptic.P256()), jose.ES384: isCurve(elliptic.P384()), jose.ES512: isCurve(elliptic.P521()),
	jose.EdDSA: isEd25519,
}

func isRSA(k any) bool { _, ok := k.(*rsa.PublicKey); return ok }

func isEd25519(k any) bool { _, ok := k.(ed25519.PublicKey); return ok }

func isCurve(c elliptic.Curve) func(any) bool {
	return func(k any) bool { p, ok := k.(*ecdsa.PublicKey); return ok && p.Curve == c }
}

// New checks cfg and returns a Verifier for it.
func New(cfg Config) (*Verifier, error) {
	prof, ok := profiles[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("jwtidp: provider %q: unknown type %q", cfg.Name, cfg.Type)
	}
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("jwtidp: provider has no name"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, fmt.Errorf("jwtidp: provider %q: issuer is required", cfg.Name))
	}
	if len(cfg.Audiences) == 0 {
		errs = append(errs, fmt.Errorf("jwtidp: provider %q: at least one audience is required", cfg.Name))
	}
	if cfg.Keys == nil {
		errs = append(errs, fmt.Errorf("jwtidp: provider %q: no key source", cfg.Name))
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	v := &Verifier{profile: prof}
	for _, a := range cfg.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if _, ok := asymmetric[alg]; !ok {
			errs = append(errs, fmt.Errorf("jwtidp: provider %q: algorithm %q is not accepted (asymmetric only)", cfg.Name, a))
			continue
		}
		v.algs = append(v.algs, alg)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	v.attrs = make(map[string]any, len(cfg.Attributes))
	for k, val := range cfg.Attributes {
		v.attrs[k] = val
	}
	v.cfg = cfg
	return v, nil
}

// Name is the provider name.
func (v *Verifier) Name() string { return v.cfg.Name }

// Type is the provider type.
func (v *Verifier) Type() string { return v.cfg.Type }

// Issuer is the iss this verifier accepts.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Verify checks token and returns its principal. Every error is a
// *identity.TokenError.
func (v *Verifier) Verify(ctx context.Context, token string) (core.Principal, error) {
	p, err := v.verify(ctx, token)
	if err != nil {
		var te *identity.TokenError
		if !errors.As(err, &te) {
			te = &identity.TokenError{Reason: identity.ReasonInvalidClaims, Err: err}
		}
		te.Provider = v.cfg.Name
		return core.Principal{}, te
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (core.Principal, error) {
	// The cheap checks come first and on stint's own decoding, so that
	// hostile input is refused before go-jose or the key source see it.
	if err := identity.CheckCompact(token); err != nil {
		return core.Principal{}, err
	}
	h, err := identity.PeekHeader(token)
	if err != nil {
		return core.Principal{}, err
	}
	alg := jose.SignatureAlgorithm(h.Alg)
	if !v.allowed(alg) {
		return core.Principal{}, reject(identity.ReasonUnsupportedAlg, fmt.Sprintf("alg %q", truncate(h.Alg)), nil)
	}
	if h.Kid == "" {
		return core.Principal{}, reject(identity.ReasonMissingKID, "", nil)
	}
	tok, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return core.Principal{}, reject(identity.ReasonMalformed, "not a valid JWS", nil)
	}
	if len(tok.Headers) != 1 {
		return core.Principal{}, reject(identity.ReasonMalformed, "want exactly one signature", nil)
	}
	// Use what go-jose parsed, which is what it verifies with.
	kid, alg := tok.Headers[0].KeyID, jose.SignatureAlgorithm(tok.Headers[0].Algorithm)
	if kid == "" || !v.allowed(alg) {
		return core.Principal{}, reject(identity.ReasonMalformed, "header changed between decoders", nil)
	}
	key, err := v.cfg.Keys.Key(ctx, kid)
	if err != nil {
		if errors.Is(err, jwks.ErrUnknownKID) {
			return core.Principal{}, reject(identity.ReasonUnknownKID, fmt.Sprintf("kid %q", truncate(kid)), nil)
		}
		return core.Principal{}, reject(identity.ReasonKeyUnavailable, "", err)
	}
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return core.Principal{}, reject(identity.ReasonAlgKeyMismatch, fmt.Sprintf("token alg %s, key alg %s", alg, key.Algorithm), nil)
	}
	if fits := asymmetric[alg]; !fits(key.Key) {
		return core.Principal{}, reject(identity.ReasonAlgKeyMismatch, fmt.Sprintf("token alg %s does not fit key type %T", alg, key.Key), nil)
	}
	// One decode into a map serves both the registered claims and the
	// profile: decoding twice was a third of the verify cost.
	var raw map[string]any
	if err := tok.Claims(key.Key, &raw); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return core.Principal{}, reject(identity.ReasonBadSignature, "", jose.ErrCryptoFailure)
		}
		return core.Principal{}, reject(identity.ReasonMalformed, "claims are not a JSON object", nil)
	}
	c := claims(raw)
	std, err := c.registered()
	if err != nil {
		return core.Principal{}, reject(identity.ReasonMalformed, err.Error(), nil)
	}
	if err := v.validate(std); err != nil {
		return core.Principal{}, err
	}

	p := core.Principal{
		Provider:   v.cfg.Name,
		Kind:       v.cfg.Type,
		Issuer:     std.Issuer,
		ExpiresAt:  std.Expiry.Time(),
		TokenID:    std.ID,
		Attributes: make(map[string]any, 16),
	}
	p.Subject = c.str(v.cfg.SubjectClaim)
	if p.Subject == "" {
		return core.Principal{}, reject(identity.ReasonInvalidClaims, fmt.Sprintf("claim %q is missing or not a string", v.cfg.SubjectClaim), nil)
	}
	if err := v.profile(&p, c); err != nil {
		return core.Principal{}, reject(identity.ReasonInvalidClaims, "", err)
	}
	for name, path := range v.cfg.ClaimAttributes {
		if val, ok := attrValue(c.path(path)); ok {
			p.Attributes[name] = val
		}
	}
	for k, val := range v.attrs {
		p.Attributes[k] = val
	}
	return p, nil
}

// validate checks the registered claims. go-jose compares, stint requires
// exp and names the reason.
func (v *Verifier) validate(std jwt.Claims) error {
	if std.Issuer != v.cfg.Issuer {
		return reject(identity.ReasonWrongIssuer, fmt.Sprintf("iss %q", truncate(std.Issuer)), nil)
	}
	if std.Expiry == nil {
		return reject(identity.ReasonMissingExp, "", nil)
	}
	err := std.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: v.cfg.Audiences,
		Time:        v.cfg.Now(),
	}, v.cfg.Skew)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrInvalidAudience):
		return reject(identity.ReasonWrongAudience, "", err)
	case errors.Is(err, jwt.ErrExpired):
		return reject(identity.ReasonExpired, "", err)
	case errors.Is(err, jwt.ErrNotValidYet):
		return reject(identity.ReasonNotYetValid, "", err)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return reject(identity.ReasonIssuedInFuture, "", err)
	default:
		return reject(identity.ReasonInvalidClaims, "", err)
	}
}

func (v *Verifier) allowed(alg jose.SignatureAlgorithm) bool {
	for _, a := range v.algs {
		if a == alg {
			return true
		}
	}
	return false
}

func reject(reason, detail string, err error) *identity.TokenError {
	return &identity.TokenError{Reason: reason, Detail: detail, Err: err}
}

// truncate bounds attacker-chosen text before it reaches a log line.
func truncate(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

var (
	_ identity.Verifier       = (*Verifier)(nil)
	_ identity.IssuerVerifier = (*Verifier)(nil)
)
