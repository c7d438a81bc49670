package jwtidp

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/core"
)

// claims is a verified claims set as decoded JSON.
type claims map[string]any

// profile fills the type-specific parts of p from verified claims; the
// core has already set Provider, Kind, Subject, Issuer, ExpiresAt, TokenID.
type profile func(p *core.Principal, c claims) error

// profiles maps a provider type to its profile, by hand (no registration).
var profiles = map[string]profile{
	"kubernetes":     kubernetesProfile,
	"oidc":           oidcProfile,
	"github-actions": githubProfile,
	"gitlab-ci":      gitlabProfile,
	"gcp":            gcpProfile,
	"azure":          azureProfile,
	"stint":          stintProfile,
}

// Types lists the provider types this package verifies, for config checks.
func Types() []string {
	return []string{"kubernetes", "oidc", "github-actions", "gitlab-ci", "gcp", "azure", "stint"}
}

// path returns the value at a dotted path. A literal member with the whole
// name wins, so "kubernetes.io" is a claim name, not a path.
func (c claims) path(p string) any {
	if v, ok := c[p]; ok {
		return v
	}
	var cur any = map[string]any(c)
	for _, part := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// str returns a string claim, "" when absent or of another type.
func (c claims) str(name string) string {
	s, _ := c.path(name).(string)
	return s
}

// obj returns an object claim.
func (c claims) obj(name string) claims {
	m, _ := c.path(name).(map[string]any)
	return m
}

// attrValue converts a claim to an attribute: strings stay strings, bools
// stay bools, numbers become their decimal text, lists of scalars become
// []string. Objects and mixed lists are not attributes (ok is false).
func attrValue(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			switch s := e.(type) {
			case string:
				out = append(out, s)
			case float64:
				out = append(out, strconv.FormatFloat(s, 'f', -1, 64))
			default:
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// copyAttrs copies the named claims of c into attrs (under the same name)
// when they are scalar or scalar lists.
func copyAttrs(attrs map[string]any, c claims, names ...string) {
	for _, n := range names {
		if v, ok := attrValue(c[n]); ok {
			attrs[n] = v
		}
	}
}

// registered extracts the RFC 7519 registered claims with their JSON types
// enforced, for jwt.Claims.ValidateWithLeeway. A claim of the wrong type is
// an error, never silently absent: a string "exp" must not mean "no expiry".
func (c claims) registered() (jwt.Claims, error) {
	var std jwt.Claims
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &std.Issuer}, {"sub", &std.Subject}, {"jti", &std.ID}} {
		if v, ok := c[f.name]; ok {
			s, isStr := v.(string)
			if !isStr {
				return jwt.Claims{}, fmt.Errorf("claim %s is not a string", f.name)
			}
			*f.dst = s
		}
	}
	switch a := c["aud"].(type) {
	case nil:
		if _, present := c["aud"]; present {
			return jwt.Claims{}, fmt.Errorf("claim aud is null")
		}
	case string:
		std.Audience = jwt.Audience{a}
	case []any:
		std.Audience = make(jwt.Audience, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return jwt.Claims{}, fmt.Errorf("claim aud holds a non-string")
			}
			std.Audience = append(std.Audience, s)
		}
	default:
		return jwt.Claims{}, fmt.Errorf("claim aud is neither string nor list")
	}
	if std.Expiry, err = c.date("exp"); err != nil {
		return jwt.Claims{}, err
	}
	if std.NotBefore, err = c.date("nbf"); err != nil {
		return jwt.Claims{}, err
	}
	if std.IssuedAt, err = c.date("iat"); err != nil {
		return jwt.Claims{}, err
	}
	return std, nil
}

// date reads a NumericDate (seconds since the epoch; fractions truncated,
// as go-jose does).
func (c claims) date(name string) (*jwt.NumericDate, error) {
	v, ok := c[name]
	if !ok {
		return nil, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return nil, fmt.Errorf("claim %s is not a valid NumericDate", name)
	}
	d := jwt.NumericDate(int64(f))
	return &d, nil
}
