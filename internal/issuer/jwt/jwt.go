// Package jwt is the issuer for targets of type jwt: it mints stint-signed
// access tokens (RFC 9068 shape) for an audience, with scopes capped by the
// role and claims templated from the principal. Tokens cannot be recalled;
// their lease only records them and they expire on their own.
package jwt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// Signer signs a claim set as a compact JWS with the given typ header.
type Signer interface {
	SignWithType(claims any, typ string) (string, error)
}

// RoleConfig is one jwt role.
type RoleConfig struct {
	Audience   string
	Scopes     []string
	Claims     map[string]string // values are text/template over {identity, human}
	DefaultTTL time.Duration
}

// Config configures one jwt target.
type Config struct {
	Name      string
	IssuerURL string
	Roles     map[string]RoleConfig
	Signer    Signer
	Now       func() time.Time
}

// Issuer mints tokens for one jwt target.
type Issuer struct {
	cfg   Config
	roles map[string]role
}

type role struct {
	RoleConfig
	claims map[string]*template.Template
}

// reserved claims are set by stint and cannot be templated by a role.
var reserved = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "scope", "client_id", "may_act"}

// New parses the role templates.
func New(cfg Config) (*Issuer, error) {
	if cfg.Signer == nil {
		return nil, fmt.Errorf("jwt %s: no signer", cfg.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	for name, rc := range cfg.Roles {
		r := role{RoleConfig: rc, claims: map[string]*template.Template{}}
		for claim, text := range rc.Claims {
			if slices.Contains(reserved, claim) || strings.HasPrefix(claim, "stint_") {
				return nil, fmt.Errorf("jwt %s: role %s: claim %q is set by stint and cannot be templated", cfg.Name, name, claim)
			}
			t, err := template.New(claim).Option("missingkey=error").Parse(text)
			if err != nil {
				return nil, fmt.Errorf("jwt %s: role %s: claim %q: %w", cfg.Name, name, claim, err)
			}
			r.claims[claim] = t
		}
		is.roles[name] = r
	}
	return is, nil
}

// Roles lists the role names.
func (i *Issuer) Roles() []string {
	out := make([]string, 0, len(i.roles))
	for n := range i.roles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// RoleForAudience finds the role whose audience is aud.
func (i *Issuer) RoleForAudience(aud string) (string, bool) {
	for n, r := range i.roles {
		if r.Audience == aud {
			return n, true
		}
	}
	return "", false
}

// Audience returns the role's audience.
func (i *Issuer) Audience(roleName string) string { return i.roles[roleName].Audience }

// DefaultTTL returns the role's default TTL.
func (i *Issuer) DefaultTTL(roleName string) time.Duration { return i.roles[roleName].DefaultTTL }

// CapScope intersects the requested space-separated scopes with the role's.
// An empty request gets every scope of the role; a request none of whose
// scopes the role has is an error.
func (i *Issuer) CapScope(roleName, requested string) (string, error) {
	r := i.roles[roleName]
	want := strings.Fields(requested)
	if len(want) == 0 {
		return strings.Join(r.Scopes, " "), nil
	}
	var got []string
	for _, s := range want {
		if slices.Contains(r.Scopes, s) && !slices.Contains(got, s) {
			got = append(got, s)
		}
	}
	if len(got) == 0 {
		return "", core.E(core.KindInvalid, "invalid_scope", fmt.Sprintf("none of the requested scopes is allowed for %s/%s", i.cfg.Name, roleName), nil)
	}
	return strings.Join(got, " "), nil
}

// Issue mints an access token. Params["scope"] is the requested scope.
func (i *Issuer) Issue(_ context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := i.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("unknown role %q on target %s", req.Role, i.cfg.Name)
	}
	scope, err := i.CapScope(req.Role, req.Params["scope"])
	if err != nil {
		return issuer.Result{}, err
	}
	extra, err := r.render(req.Principal, req.Human)
	if err != nil {
		return issuer.Result{}, core.Invalid("jwt %s/%s: claim template: %v", i.cfg.Name, req.Role, err)
	}
	subject := req.Principal
	if req.Human != nil {
		// On behalf of a human: sub is the human, act the workload (RFC 8693 §4.1).
		h := *req.Human
		w := req.Principal
		h.Actor = &w
		subject = h
	}
	tok, err := Mint(i.cfg.Signer, Token{
		Issuer: i.cfg.IssuerURL, Audience: r.Audience, Subject: subject,
		IssuedAt: req.IssuedAt, Expiry: req.ExpiresAt, ID: req.LeaseID, Scope: scope, Extra: extra,
	})
	if err != nil {
		return issuer.Result{}, err
	}
	return issuer.Result{
		Credential: core.Credential{"access_token": tok, "token_type": "Bearer", "scope": scope, "audience": r.Audience},
		Internal:   []byte(req.LeaseID),
		ExpiresAt:  req.ExpiresAt,
	}, nil
}

// Revoke succeeds: a JWT cannot be recalled, it expires on its own.
func (i *Issuer) Revoke(context.Context, issuer.RevokeRequest) error { return nil }

func (r role) render(p core.Principal, h *core.Principal) (map[string]any, error) {
	if len(r.claims) == 0 {
		return nil, nil
	}
	data := map[string]any{"identity": p.Map(), "human": h.Map()}
	out := make(map[string]any, len(r.claims))
	var buf bytes.Buffer
	for name, t := range r.claims {
		buf.Reset()
		if err := t.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("claim %q: %w", name, err)
		}
		out[name] = buf.String()
	}
	return out, nil
}

// Token describes one stint token.
type Token struct {
	Issuer   string
	Audience string
	// Subject is the principal the token names; its Actor chain becomes act.
	Subject  core.Principal
	IssuedAt time.Time
	Expiry   time.Time
	ID       string // jti; random when empty
	Scope    string
	Extra    map[string]any
	// Type is the typ header: "at+jwt" for access tokens (default), "JWT" for session tokens.
	Type string
}

// Mint signs t. The claim layout (sub, stint_provider, stint_kind,
// stint_attrs, and act nested with the same keys plus the actor's iss) is
// what the "stint" identity profile reads back.
func Mint(s Signer, t Token) (string, error) {
	if t.ID == "" {
		t.ID = NewID()
	}
	c := claimSet{
		Iss: t.Issuer, Sub: t.Subject.Subject, Aud: t.Audience,
		Iat: t.IssuedAt.Unix(), Nbf: t.IssuedAt.Unix(), Exp: t.Expiry.Unix(), Jti: t.ID, Scope: t.Scope,
		Provider: t.Subject.Provider, Kind: t.Subject.Kind, Attrs: t.Subject.Attributes,
		Act: actorOf(t.Subject.Actor), extra: t.Extra,
	}
	typ := t.Type
	if typ == "" {
		typ = "at+jwt"
	}
	tok, err := s.SignWithType(c, typ)
	if err != nil {
		return "", fmt.Errorf("jwt: sign: %w", err)
	}
	return tok, nil
}

// claimSet is a stint token's claims. A struct, not a map: encoding a map
// sorts its keys and allocates per entry, on every token signed.
type claimSet struct {
	Iss      string         `json:"iss"`
	Sub      string         `json:"sub"`
	Aud      string         `json:"aud"`
	Iat      int64          `json:"iat"`
	Nbf      int64          `json:"nbf"`
	Exp      int64          `json:"exp"`
	Jti      string         `json:"jti"`
	Scope    string         `json:"scope,omitempty"`
	Act      *actorClaims   `json:"act,omitempty"`
	Provider string         `json:"stint_provider"`
	Kind     string         `json:"stint_kind"`
	Attrs    map[string]any `json:"stint_attrs,omitempty"`
	// extra are the role's templated claims; New keeps them off the names above.
	extra map[string]any
}

// MarshalJSON appends the extra claims to the fixed ones.
func (c claimSet) MarshalJSON() ([]byte, error) {
	type plain claimSet
	b, err := json.Marshal(plain(c))
	if err != nil || len(c.extra) == 0 {
		return b, err
	}
	x, err := json.Marshal(c.extra)
	if err != nil {
		return nil, err
	}
	// Both are objects: join "{…}" and "{…}" into one.
	return append(append(b[:len(b)-1], ','), x[1:]...), nil
}

// actorClaims is an RFC 8693 act claim; its iss is the actor's proof issuer.
type actorClaims struct {
	Sub      string         `json:"sub"`
	Iss      string         `json:"iss,omitempty"`
	Provider string         `json:"stint_provider"`
	Kind     string         `json:"stint_kind"`
	Attrs    map[string]any `json:"stint_attrs,omitempty"`
	Act      *actorClaims   `json:"act,omitempty"`
}

func actorOf(p *core.Principal) *actorClaims {
	if p == nil {
		return nil
	}
	return &actorClaims{Sub: p.Subject, Iss: p.Issuer, Provider: p.Provider, Kind: p.Kind, Attrs: p.Attributes, Act: actorOf(p.Actor)}
}

// NewID returns a random 128-bit identifier in hex.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("jwt: crypto/rand failed: %v", err)) // the OS RNG failing is unrecoverable
	}
	return hex.EncodeToString(b[:])
}

var _ issuer.Issuer = (*Issuer)(nil)

// NeedsNoCleanup marks the issuer as signing only (issuer.NoCleanup).
func (i *Issuer) NeedsNoCleanup() {}

var _ issuer.NoCleanup = (*Issuer)(nil)
