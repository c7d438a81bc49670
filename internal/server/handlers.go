package server

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// token is RFC 8693 token exchange at the OAuth token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	m := meta(r)
	if s.refuseIfBlocked(w, r, m) {
		return
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, r, m, core.Invalid("request body larger than %d bytes", mbe.Limit))
			return
		}
		s.fail(w, r, m, core.Invalid("malformed form body"))
		return
	}
	f := r.PostForm
	for _, single := range []string{"grant_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type", "scope"} {
		if len(f[single]) > 1 {
			s.fail(w, r, m, core.Invalid("parameter %s given more than once", single))
			return
		}
	}
	res, err := s.o.Broker.Exchange(r.Context(), broker.ExchangeRequest{
		GrantType:        f.Get("grant_type"),
		SubjectToken:     f.Get("subject_token"),
		SubjectTokenType: f.Get("subject_token_type"),
		ActorToken:       f.Get("actor_token"),
		ActorTokenType:   f.Get("actor_token_type"),
		Audience:         f["audience"],
		Resource:         f["resource"],
		Scope:            f.Get("scope"),
		Meta:             m,
	})
	if err != nil {
		// RFC 8693 §2.2.2: an invalid subject or actor token is invalid_request (400).
		var e *core.Error
		if errors.As(err, &e) && e.Kind == core.KindUnauthenticated {
			s.limiter.failed(m.Source)
			err = core.E(core.KindInvalid, "invalid_request", e.Public, e.Cause())
		}
		s.fail(w, r, m, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	iss := s.o.IssuerURL
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"token_endpoint":                        iss + "/oauth2/token",
		"grant_types_supported":                 []string{broker.GrantTypeTokenExchange},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algs(s.o.Keys),
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func algs(k KeySet) []string {
	seen := map[string]bool{}
	var out []string
	for _, key := range k.JWKS().Keys {
		if !seen[key.Algorithm] {
			seen[key.Algorithm] = true
			out = append(out, key.Algorithm)
		}
	}
	return out
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSONNoStore(w, s.o.Keys.JWKS())
}

func writeJSONNoStore(w http.ResponseWriter, v any) {
	w.WriteHeader(http.StatusOK)
	_ = jsonEncoder(w).Encode(v)
}

// credentialsBody is POST /v1/credentials.
type credentialsBody struct {
	Target     string            `json:"target"`
	Role       string            `json:"role"`
	TTL        string            `json:"ttl"`
	OnBehalfOf string            `json:"on_behalf_of"`
	PublicKey  string            `json:"public_key"`
	CSR        string            `json:"csr"`
	Scope      string            `json:"scope"`
	Params     map[string]string `json:"params"`
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b credentialsBody
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, m, err)
		return
	}
	if b.Target == "" || b.Role == "" {
		s.fail(w, r, m, core.Invalid("target and role are required"))
		return
	}
	ttl, err := parseTTL(b.TTL)
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	params := map[string]string{}
	for k, v := range b.Params {
		params[k] = v
	}
	for k, v := range map[string]string{"public_key": b.PublicKey, "csr": b.CSR, "scope": b.Scope} {
		if v != "" {
			params[k] = v
		}
	}
	res, err := s.o.Broker.IssueCredential(r.Context(), broker.CredentialRequest{
		Token: tok, OnBehalfOf: b.OnBehalfOf, Target: b.Target, Role: b.Role, TTL: ttl, Params: params, Meta: m,
	})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeCredentialResult(w, http.StatusOK, &res)
}

// parseTTL accepts "" (default), "90s", "15m", or a number of seconds.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < 1<<31 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || len(s) > 32 {
		return 0, core.Invalid("ttl must be a positive duration such as 90s or 15m")
	}
	return d, nil
}

// leaseView is a lease as the API returns it.
type leaseView struct {
	core.Lease
}

func (s *Server) getLease(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	l, err := s.o.Broker.GetLease(r.Context(), broker.LeaseAction{Token: tok, LeaseID: r.PathValue("id"), Meta: m})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusOK, leaseView{l})
}

type renewBody struct {
	TTL string `json:"ttl"`
}

func (s *Server) renewLease(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b renewBody
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &b); err != nil {
			s.fail(w, r, m, err)
			return
		}
	}
	ttl, err := parseTTL(b.TTL)
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	l, err := s.o.Broker.RenewLease(r.Context(), broker.LeaseAction{Token: tok, LeaseID: r.PathValue("id"), TTL: ttl, Meta: m})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusOK, leaseView{l})
}

type revokeBody struct {
	Force bool `json:"force"`
}

func (s *Server) revokeLease(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b revokeBody
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &b); err != nil {
			s.fail(w, r, m, err)
			return
		}
	}
	l, err := s.o.Broker.RevokeLease(r.Context(), broker.LeaseAction{Token: tok, LeaseID: r.PathValue("id"), Force: b.Force, Meta: m})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusOK, leaseView{l})
}

func (s *Server) listLeases(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	f, err := leaseFilter(r.URL.Query())
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	ls, err := s.o.Broker.ListLeases(r.Context(), m, tok, f)
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	if ls == nil {
		ls = []core.Lease{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"leases": ls})
}

func leaseFilter(q url.Values) (store.LeaseFilter, error) {
	f := store.LeaseFilter{
		Subject: q.Get("subject"), Provider: q.Get("provider"), Human: q.Get("human"),
		Target: q.Get("target"), Role: q.Get("role"), Rule: q.Get("rule"), AfterID: q.Get("after"),
	}
	for _, st := range q["state"] {
		switch core.LeaseState(st) {
		case core.LeasePending, core.LeaseActive, core.LeaseRevoking, core.LeaseRevoked, core.LeaseFailed:
			f.States = append(f.States, core.LeaseState(st))
		default:
			return f, core.Invalid("state must be pending, active, revoking, revoked or failed")
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > 1000 {
			return f, core.Invalid("limit must be between 1 and 1000")
		}
		f.Limit = n
	}
	return f, nil
}

type selectorBody struct {
	Subject  string `json:"subject"`
	Provider string `json:"provider"`
	Human    string `json:"human"`
	Target   string `json:"target"`
	Role     string `json:"role"`
	Rule     string `json:"rule"`
}

func (s *Server) revokeMatching(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b selectorBody
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, m, err)
		return
	}
	n, err := s.o.Broker.RevokeMatching(r.Context(), m, tok, store.LeaseFilter{
		Subject: b.Subject, Provider: b.Provider, Human: b.Human, Target: b.Target, Role: b.Role, Rule: b.Rule,
	})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"revoking": n})
}

type evaluateBody struct {
	Identity core.Principal  `json:"identity"`
	Human    *core.Principal `json:"human"`
	Grant    string          `json:"grant"`
	Request  map[string]any  `json:"request"`
}

func (s *Server) evaluate(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b evaluateBody
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, m, err)
		return
	}
	x, err := s.o.Broker.EvaluatePolicy(r.Context(), broker.EvaluateRequest{
		Token: tok, Identity: b.Identity, Human: b.Human, Grant: b.Grant, Request: b.Request, Meta: m,
	})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		if err := s.o.Ready(r.Context()); err != nil {
			s.o.Logger.Warn("not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// auditQuery is GET /v1/audit?since=1h&type=…&outcome=…&subject=…&limit=…
func (s *Server) auditQuery(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	q := r.URL.Query()
	aq := broker.AuditQuery{Filter: audit.Filter{Types: q["type"], Outcomes: q["outcome"]}, Subject: q.Get("subject")}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			s.fail(w, r, m, core.Invalid("since must be a duration such as 1h"))
			return
		}
		aq.Since = time.Now().Add(-d)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			s.fail(w, r, m, core.Invalid("limit must be between 1 and 10000"))
			return
		}
		aq.Limit = n
	}
	evs, err := s.o.Broker.QueryAudit(r.Context(), m, tok, aq)
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	if evs == nil {
		evs = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
}
