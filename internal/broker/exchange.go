package broker

import (
	"context"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	jwtissuer "github.com/stint-dev/stint/internal/issuer/jwt"
)

// RFC 8693 identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// ExchangeRequest is an RFC 8693 token exchange.
type ExchangeRequest struct {
	GrantType        string
	SubjectToken     string
	SubjectTokenType string
	ActorToken       string
	ActorTokenType   string
	// Audience and Resource both name the token's audience; at most one value in all.
	Audience []string
	Resource []string
	Scope    string
	Meta     Meta
}

// ExchangeResult is the RFC 8693 response.
type ExchangeResult struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

func tokenTypeOK(t string) bool {
	return t == TokenTypeJWT || t == TokenTypeIDToken || t == TokenTypeAccessToken
}

// Exchange verifies the subject (and actor) token and returns a stint
// token: a session token restating the identity when no audience is asked,
// else an access token for a jwt role that policy grants.
func (b *Broker) Exchange(ctx context.Context, r ExchangeRequest) (ExchangeResult, error) {
	start := b.o.Now()
	res, err := b.exchange(ctx, r)
	b.o.Metrics.observe("exchange", start, b.o.Now(), err)
	return res, err
}

func (b *Broker) exchange(ctx context.Context, r ExchangeRequest) (ExchangeResult, error) {
	if r.GrantType != GrantTypeTokenExchange {
		return ExchangeResult{}, core.E(core.KindInvalid, "unsupported_grant_type", "grant_type must be "+GrantTypeTokenExchange, nil)
	}
	if r.SubjectToken == "" {
		return ExchangeResult{}, core.Invalid("subject_token is required")
	}
	if !tokenTypeOK(r.SubjectTokenType) {
		return ExchangeResult{}, core.Invalid("subject_token_type must be a JWT, id_token or access_token type URI")
	}
	if (r.ActorToken == "") != (r.ActorTokenType == "") {
		return ExchangeResult{}, core.Invalid("actor_token and actor_token_type go together")
	}
	if r.ActorToken != "" && !tokenTypeOK(r.ActorTokenType) {
		return ExchangeResult{}, core.Invalid("actor_token_type must be a JWT, id_token or access_token type URI")
	}
	auds := append(append([]string{}, r.Audience...), r.Resource...)
	if len(auds) > 1 {
		return ExchangeResult{}, core.E(core.KindInvalid, "invalid_target", "ask for one audience or resource per exchange", nil)
	}

	subject, err := b.authenticate(ctx, r.Meta, r.SubjectToken, "subject_token")
	if err != nil {
		return ExchangeResult{}, err
	}
	events := []audit.Event{b.authSuccess(r.Meta, subject)}
	expiry := subject.ExpiresAt
	if r.ActorToken != "" {
		act, err := b.authenticate(ctx, r.Meta, r.ActorToken, "actor_token")
		if err != nil {
			return ExchangeResult{}, err
		}
		// The actor proves itself with its own token. A delegated token as
		// actor would swap the roles: sub=H,act=W presented as actor by W
		// would yield a token naming W as subject and H as actor, i.e. H
		// acting — W would then hold H's identity.
		if act.Actor != nil {
			return ExchangeResult{}, core.Invalid("actor_token must be the actor's own token, not a delegated one")
		}
		if act.Provider == subject.Provider && act.Subject == subject.Subject {
			return ExchangeResult{}, core.Invalid("actor_token and subject_token name the same principal")
		}
		events = append(events, b.authSuccess(r.Meta, act))
		// The new actor acts now; earlier actors of the subject token stay nested under it.
		act.Actor = subject.Actor
		subject.Actor = &act
		if act.ExpiresAt.Before(expiry) {
			expiry = act.ExpiresAt
		}
	}
	now := b.o.Now()
	id, human := actors(subject)

	if len(auds) == 0 {
		// A session token restates the verified identity; it grants nothing by
		// itself and never outlives the proofs it restates.
		exp := now.Add(b.o.SessionTTL)
		if !expiry.IsZero() && expiry.Before(exp) {
			exp = expiry
		}
		jti := jwtissuer.NewID()
		tok, err := jwtissuer.Mint(b.o.Signer, jwtissuer.Token{
			Issuer: b.o.IssuerURL, Audience: b.o.IssuerURL, Subject: subject,
			IssuedAt: now, Expiry: exp, ID: jti, Type: "JWT",
		})
		if err != nil {
			return ExchangeResult{}, core.E(core.KindInternal, "", "could not sign the token", err)
		}
		events = append(events, audit.Event{
			Type: audit.TokenExchange, RequestID: r.Meta.RequestID, Source: r.Meta.Source, Outcome: audit.OutcomeSuccess,
			Principal: b.actor(&id), Human: b.actor(human),
			Details: map[string]any{"jti": jti, "aud": b.o.IssuerURL, "token": "session", "expires_at": exp.UTC().Format(time.RFC3339)},
		})
		if err := b.record(ctx, events...); err != nil {
			return ExchangeResult{}, err
		}
		return ExchangeResult{AccessToken: tok, IssuedTokenType: TokenTypeJWT, TokenType: "Bearer", ExpiresIn: secondsUntil(now, exp)}, nil
	}

	ar, ok := b.audiences[auds[0]]
	if !ok {
		err := core.E(core.KindInvalid, "invalid_target", "no jwt role has this audience", nil)
		events = append(events, audit.Event{
			Type: audit.TokenExchange, RequestID: r.Meta.RequestID, Source: r.Meta.Source, Outcome: audit.OutcomeFailure,
			Principal: b.actor(&id), Human: b.actor(human), Error: err.Public, Details: map[string]any{"aud": auds[0]},
		})
		_ = b.record(ctx, events...)
		return ExchangeResult{}, err
	}
	res, more, err := b.accessToken(ctx, r.Meta, ar, auds[0], r.Scope, id, human, now)
	events = append(events, more...)
	if rerr := b.record(ctx, events...); rerr != nil && err == nil {
		return ExchangeResult{}, rerr
	}
	return res, err
}

// accessToken authorizes and mints a token for a jwt role; it returns the
// policy event and the issuance outcome event to record.
func (b *Broker) accessToken(ctx context.Context, m Meta, ar audienceRole, aud, scope string, id core.Principal, human *core.Principal, now time.Time) (ExchangeResult, []audit.Event, error) {
	g := core.Grant{Target: ar.target, Role: ar.role}
	outcome := audit.Event{
		Type: audit.CredentialIssue, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeFailure,
		Principal: b.actor(&id), Human: b.actor(human), Target: g.Target, Role: g.Role,
		Details: map[string]any{"aud": aud, "via": "token-exchange"},
	}
	fail := func(events []audit.Event, err error) (ExchangeResult, []audit.Event, error) {
		outcome.Error = errText(err)
		return ExchangeResult{}, append(events, outcome), err
	}
	scope, err := ar.is.CapScope(ar.role, scope)
	if err != nil {
		return fail(nil, err)
	}
	d, err := b.decide(id, human, g, map[string]any{"target": g.Target, "role": g.Role, "audience": aud, "scope": scope})
	events := []audit.Event{d.event(m, b, &id, human, g)}
	if err != nil {
		return ExchangeResult{}, events, err // the policy.deny event is the outcome
	}
	outcome.Rule = d.Rule
	ttl, err := ttlFor(0, ar.is.DefaultTTL(ar.role), d.MaxTTL)
	if err != nil {
		return fail(events, err)
	}
	jti := jwtissuer.NewID()
	res, err := ar.is.Issue(ctx, issuer.Request{
		LeaseID: jti, Role: ar.role, Principal: id, Human: human, Rule: d.Rule,
		IssuedAt: now, ExpiresAt: now.Add(ttl), Params: map[string]string{"scope": scope},
	})
	if err != nil {
		return fail(events, err)
	}
	outcome.Outcome = audit.OutcomeSuccess
	outcome.Details["jti"] = jti
	outcome.Details["scope"] = scope
	outcome.Details["ttl_seconds"] = int64(ttl / time.Second)
	return ExchangeResult{
		AccessToken: res.Credential["access_token"], IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer",
		ExpiresIn: int64(ttl / time.Second), Scope: scope,
	}, append(events, outcome), nil
}

func (b *Broker) authSuccess(m Meta, p core.Principal) audit.Event {
	return audit.Event{Type: audit.AuthSuccess, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeSuccess, Principal: b.actor(&p)}
}

func secondsUntil(now, t time.Time) int64 {
	s := int64(t.Sub(now) / time.Second)
	if s < 0 {
		return 0
	}
	return s
}

// policyResult is a decision with the error it implies.
type policyResult struct {
	Allow  bool
	Rule   string
	MaxTTL time.Duration
	Reason string
}

func (b *Broker) decide(id core.Principal, human *core.Principal, g core.Grant, req map[string]any) (policyResult, error) {
	d, err := b.authorize(id, human, g, req)
	return policyResult{Allow: d.Allow, Rule: d.Rule, MaxTTL: d.MaxTTL, Reason: d.Reason}, err
}

func (d policyResult) event(m Meta, b *Broker, id, human *core.Principal, g core.Grant) audit.Event {
	e := audit.Event{
		Type: audit.PolicyAllow, RequestID: m.RequestID, Source: m.Source, Outcome: audit.OutcomeSuccess,
		Principal: b.actor(id), Human: b.actor(human), Target: g.Target, Role: g.Role, Rule: d.Rule, Reason: d.Reason,
	}
	if !d.Allow {
		e.Type, e.Outcome = audit.PolicyDeny, audit.OutcomeDenied
	}
	return e
}
