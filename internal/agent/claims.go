package agent

import (
	"errors"
	"fmt"
	"sort"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// peekAlgorithms are the signature algorithms PeekClaims accepts when
// parsing: every asymmetric one platforms use. (Nothing is verified here;
// the list only keeps go-jose from parsing "none" or HMAC shapes.)
var peekAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Claims is what an identity token says about its holder, read without
// verifying it: for display (`stint whoami`) and for caching until expiry,
// never for a trust decision — the server verifies.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	Expiry   time.Time
	IssuedAt time.Time
	// Other holds every other claim as decoded JSON.
	Other map[string]any
}

// PeekClaims parses a compact JWS with go-jose and returns its claims
// without checking the signature. A token that is not a JWT (an opaque
// stint-less token) yields an error.
func PeekClaims(tok string) (Claims, error) {
	parsed, err := jwt.ParseSigned(tok, peekAlgorithms)
	if err != nil {
		return Claims{}, fmt.Errorf("identity: token is not a JWT: %w", err)
	}
	var std jwt.Claims
	all := map[string]any{}
	if err := parsed.UnsafeClaimsWithoutVerification(&std, &all); err != nil {
		return Claims{}, fmt.Errorf("identity: token claims: %w", err)
	}
	if len(parsed.Headers) == 0 {
		return Claims{}, errors.New("identity: token has no header")
	}
	c := Claims{Issuer: std.Issuer, Subject: std.Subject, Audience: std.Audience, Other: map[string]any{}}
	if std.Expiry != nil {
		c.Expiry = std.Expiry.Time()
	}
	if std.IssuedAt != nil {
		c.IssuedAt = std.IssuedAt.Time()
	}
	for k, v := range all {
		switch k {
		case "iss", "sub", "aud", "exp", "iat", "nbf", "jti":
		default:
			c.Other[k] = v
		}
	}
	return c, nil
}

// OtherKeys lists the extra claim names in order.
func (c Claims) OtherKeys() []string {
	out := make([]string, 0, len(c.Other))
	for k := range c.Other {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
