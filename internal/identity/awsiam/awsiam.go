// Package awsiam verifies AWS IAM identities the way Vault's iam login
// does: the caller signs an sts:GetCallerIdentity request with its ambient
// AWS credentials (SigV4) without sending it, and presents the signed
// request as its proof. stint checks that the request can only be that one
// call, to a configured STS endpoint, bound to this stint by a signed
// server-id header and recent, then forwards it to STS and turns STS's
// answer into a principal. stint never sees the caller's secret key, and
// STS alone judges the signature.
package awsiam

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/identity"
)

// Kind is the principal kind and the config type of this provider.
const Kind = "aws-iam"

// DefaultMaxAge is how old a signature may be, which is also how long STS
// itself accepts a SigV4 signature.
const DefaultMaxAge = 15 * time.Minute

// GlobalEndpoint is the global STS endpoint (signed for us-east-1).
const GlobalEndpoint = "https://sts.amazonaws.com/"

// Reasons beyond identity's shared ones, for logs, audit and metrics.
const (
	ReasonWrongServerID       = "wrong_server_id"
	ReasonEndpointNotAllowed  = "endpoint_not_allowed"
	ReasonActionNotAllowed    = "action_not_allowed"
	ReasonSTSRejected         = "sts_rejected"
	ReasonPrincipalNotAllowed = "principal_not_allowed"
)

// Bounds on attacker-controlled parts of a proof.
const (
	maxHeaders       = 24
	maxHeaderValue   = 4 << 10
	maxBody          = 1 << 10
	maxResponseBytes = 64 << 10
)

// Config configures one aws-iam identity provider.
type Config struct {
	// Name is the configured provider name.
	Name string
	// Endpoints is the allow-list of STS endpoint URLs (https; http only
	// for loopback test endpoints named here explicitly).
	Endpoints []string
	// ServerID is the value the signed X-Stint-Server-ID header must carry.
	ServerID string
	// Accounts, if set, are the only AWS account IDs accepted.
	Accounts []string
	// RoleARNs, if set, are path.Match patterns one of which the principal's
	// subject (an IAM role or user ARN) must match.
	RoleARNs []string
	// MaxAge bounds the age (and future skew) of the signature; default 15m.
	MaxAge time.Duration
	// Attributes are added to every principal.
	Attributes map[string]string
	// HTTPClient sends the proof to STS; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier is one aws-iam identity provider.
type Verifier struct {
	cfg       Config
	endpoints []*url.URL
}

// DefaultEndpoints is the global endpoint plus the regional endpoint of
// each region, which is what sts_endpoints defaults to.
func DefaultEndpoints(regions []string) []string {
	out := []string{GlobalEndpoint}
	for _, r := range regions {
		out = append(out, fmt.Sprintf("https://sts.%s.amazonaws.com/", r))
	}
	return out
}

// New checks cfg and builds the verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.ServerID == "" {
		return nil, fmt.Errorf("awsiam %s: server_id is required", cfg.Name)
	}
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("awsiam %s: at least one STS endpoint is required", cfg.Name)
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxAge > DefaultMaxAge {
		return nil, fmt.Errorf("awsiam %s: max_age %s exceeds STS's own 15m signature window", cfg.Name, cfg.MaxAge)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg}
	for _, e := range cfg.Endpoints {
		u, err := ParseEndpoint(e)
		if err != nil {
			return nil, fmt.Errorf("awsiam %s: %w", cfg.Name, err)
		}
		v.endpoints = append(v.endpoints, u)
	}
	for _, p := range cfg.RoleARNs {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("awsiam %s: role_arns pattern %q: %w", cfg.Name, p, err)
		}
	}
	return v, nil
}

// ParseEndpoint checks one STS endpoint URL: https with a host and no
// query, or http on a loopback address (local test endpoints only).
func ParseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("sts endpoint %q: want an absolute URL without query or credentials", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("sts endpoint %q: plain http is only allowed on loopback", s)
		}
	default:
		return nil, fmt.Errorf("sts endpoint %q: want https", s)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Name is the configured provider name.
func (v *Verifier) Name() string { return v.cfg.Name }

// Issuer names the trust source: the first configured STS endpoint. It
// satisfies identity.IssuerVerifier; the router routes aws-iam proofs by
// ProofPrefix, never by this value.
func (v *Verifier) Issuer() string { return v.endpoints[0].String() }

// ProofPrefix marks the proofs this verifier takes.
func (v *Verifier) ProofPrefix() string { return Prefix }

// Claims reports whether proof names this provider's server id, without
// trusting it: it only picks among several aws-iam providers, and Verify
// checks everything again.
func (v *Verifier) Claims(proof string) bool {
	p, err := Decode(proof)
	if err != nil {
		return false
	}
	return headerValue(p.Headers, ServerIDHeader) == v.cfg.ServerID
}

// headerValue finds a header in a proof's (not yet canonical) header map.
func headerValue(h http.Header, name string) string {
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) == 1 {
			return vs[0]
		}
	}
	return ""
}

func (v *Verifier) reject(reason, format string, args ...any) error {
	return &identity.TokenError{Reason: reason, Provider: v.cfg.Name, Detail: truncate(fmt.Sprintf(format, args...))}
}

// Verify checks the proof, has STS verify its signature, and returns the
// principal STS names. The error text never contains the proof's headers
// or signature.
func (v *Verifier) Verify(ctx context.Context, proof string) (core.Principal, error) {
	if len(proof) > MaxProofSize {
		return core.Principal{}, v.reject(identity.ReasonTooLarge, "%d bytes, limit %d", len(proof), MaxProofSize)
	}
	p, err := Decode(proof)
	if err != nil {
		return core.Principal{}, &identity.TokenError{Reason: identity.ReasonMalformed, Provider: v.cfg.Name, Err: err}
	}
	req, signedAt, err := v.check(p)
	if err != nil {
		return core.Principal{}, err
	}
	id, err := v.send(ctx, req)
	if err != nil {
		return core.Principal{}, err
	}
	pr, err := principalFrom(id)
	if err != nil {
		return core.Principal{}, v.reject(identity.ReasonInvalidClaims, "%v", err)
	}
	if len(v.cfg.Accounts) > 0 && !slices.Contains(v.cfg.Accounts, id.Account) {
		return core.Principal{}, v.reject(ReasonPrincipalNotAllowed, "account %s is not allowed", id.Account)
	}
	if len(v.cfg.RoleARNs) > 0 && !matchAny(v.cfg.RoleARNs, pr.Subject) {
		return core.Principal{}, v.reject(ReasonPrincipalNotAllowed, "%s matches no allowed role_arns", pr.Subject)
	}
	pr.Provider = v.cfg.Name
	pr.Issuer = req.URL.Scheme + "://" + req.URL.Host + "/"
	pr.ExpiresAt = signedAt.Add(v.cfg.MaxAge)
	for k, val := range v.cfg.Attributes {
		if _, set := pr.Attributes[k]; !set {
			pr.Attributes[k] = val
		}
	}
	return pr, nil
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// check enforces everything stint can check before STS: the request is
// GetCallerIdentity to an allowed endpoint, signed over the server id,
// recent and small. It returns the request to send, built from the
// configured endpoint rather than the caller's URL.
func (v *Verifier) check(p Proof) (*http.Request, time.Time, error) {
	var zero time.Time
	if p.Method != http.MethodPost && p.Method != http.MethodGet {
		return nil, zero, v.reject(ReasonActionNotAllowed, "method %q", p.Method)
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, zero, v.reject(identity.ReasonMalformed, "unparseable url")
	}
	ep := v.endpoint(u)
	if ep == nil {
		return nil, zero, v.reject(ReasonEndpointNotAllowed, "%s://%s%s is not a configured STS endpoint", u.Scheme, u.Host, u.EscapedPath())
	}
	if len(p.Body) > maxBody {
		return nil, zero, v.reject(identity.ReasonTooLarge, "body of %d bytes", len(p.Body))
	}
	if len(p.Headers) > maxHeaders {
		return nil, zero, v.reject(identity.ReasonTooLarge, "%d headers", len(p.Headers))
	}
	h := http.Header{}
	for k, vs := range p.Headers {
		ck := http.CanonicalHeaderKey(k)
		if _, dup := h[ck]; dup || len(vs) != 1 || len(vs[0]) > maxHeaderValue {
			return nil, zero, v.reject(identity.ReasonMalformed, "header %q must appear once with one bounded value", truncate(ck))
		}
		h[ck] = vs
	}
	var params url.Values
	switch p.Method {
	case http.MethodPost:
		if u.RawQuery != "" {
			return nil, zero, v.reject(ReasonActionNotAllowed, "POST with a query string")
		}
		mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, zero, v.reject(ReasonActionNotAllowed, "POST body must be form-encoded")
		}
		if params, err = url.ParseQuery(p.Body); err != nil {
			return nil, zero, v.reject(identity.ReasonMalformed, "unparseable form body")
		}
	case http.MethodGet:
		if p.Body != "" {
			return nil, zero, v.reject(ReasonActionNotAllowed, "GET with a body")
		}
		if params, err = url.ParseQuery(u.RawQuery); err != nil {
			return nil, zero, v.reject(identity.ReasonMalformed, "unparseable query")
		}
	}
	if err := v.checkAction(params); err != nil {
		return nil, zero, err
	}
	signed, err := v.checkSignature(h)
	if err != nil {
		return nil, zero, err
	}
	at, err := time.Parse("20060102T150405Z", h.Get("X-Amz-Date"))
	if err != nil {
		return nil, zero, v.reject(identity.ReasonMalformed, "X-Amz-Date missing or malformed")
	}
	now := v.cfg.Now()
	if now.Sub(at) > v.cfg.MaxAge {
		return nil, zero, v.reject(identity.ReasonExpired, "signed at %s, more than %s ago", at.Format(time.RFC3339), v.cfg.MaxAge)
	}
	if at.Sub(now) > v.cfg.MaxAge {
		return nil, zero, v.reject(identity.ReasonIssuedInFuture, "signed at %s, in the future", at.Format(time.RFC3339))
	}

	target := *ep
	if p.Method == http.MethodGet {
		target.RawQuery = u.RawQuery
	}
	req, err := http.NewRequest(p.Method, target.String(), strings.NewReader(p.Body))
	if err != nil {
		return nil, zero, v.reject(identity.ReasonMalformed, "build request")
	}
	// Forward only what the signature covers (plus the signature itself),
	// so nothing unsigned the caller adds reaches STS.
	for _, name := range signed {
		switch name {
		case "host", "content-length":
		default:
			if vals, ok := h[http.CanonicalHeaderKey(name)]; ok {
				req.Header[http.CanonicalHeaderKey(name)] = vals
			}
		}
	}
	req.Header["Authorization"] = h["Authorization"]
	return req, at, nil
}

// endpoint returns the configured endpoint u names exactly (scheme, host
// and port, path), or nil.
func (v *Verifier) endpoint(u *url.URL) *url.URL {
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	for _, ep := range v.endpoints {
		if u.Scheme == ep.Scheme && strings.ToLower(u.Host) == ep.Host && p == ep.Path {
			return ep
		}
	}
	return nil
}

// checkAction allows exactly Action=GetCallerIdentity and a Version.
func (v *Verifier) checkAction(params url.Values) error {
	for k, vals := range params {
		if len(vals) != 1 {
			return v.reject(ReasonActionNotAllowed, "parameter %q repeated", truncate(k))
		}
		if k != "Action" && k != "Version" {
			return v.reject(ReasonActionNotAllowed, "unexpected parameter %q", truncate(k))
		}
	}
	if a := params.Get("Action"); a != "GetCallerIdentity" {
		return v.reject(ReasonActionNotAllowed, "action %q; only GetCallerIdentity is accepted", truncate(a))
	}
	return nil
}

// checkSignature parses the SigV4 Authorization header enough to insist
// that the server id, the date and the host are signed, and returns the
// signed header names. STS checks the signature itself.
func (v *Verifier) checkSignature(h http.Header) ([]string, error) {
	rest, ok := strings.CutPrefix(h.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return nil, v.reject(identity.ReasonUnsupportedAlg, "Authorization is not AWS4-HMAC-SHA256")
	}
	var signed []string
	var scope []string
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			scope = strings.Split(val, "/")
		case "SignedHeaders":
			signed = strings.Split(val, ";")
		}
	}
	if len(scope) != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
		return nil, v.reject(identity.ReasonMalformed, "credential scope is not for sts")
	}
	for _, need := range []string{"host", "x-amz-date", strings.ToLower(ServerIDHeader)} {
		if !slices.Contains(signed, need) {
			return nil, v.reject(ReasonWrongServerID, "%s is not among the signed headers", need)
		}
	}
	if got := h.Get(ServerIDHeader); got != v.cfg.ServerID {
		return nil, v.reject(ReasonWrongServerID, "server id %q, want %q", truncate(got), v.cfg.ServerID)
	}
	return signed, nil
}

// callerIdentity is the GetCallerIdentityResult STS returns.
type callerIdentity struct {
	Arn     string `xml:"GetCallerIdentityResult>Arn"`
	UserID  string `xml:"GetCallerIdentityResult>UserId"`
	Account string `xml:"GetCallerIdentityResult>Account"`
}

type stsError struct {
	Code string `xml:"Error>Code"`
}

func (v *Verifier) send(ctx context.Context, req *http.Request) (callerIdentity, error) {
	resp, err := v.cfg.HTTPClient.Do(req.WithContext(ctx))
	if err != nil {
		return callerIdentity{}, &identity.TokenError{Reason: identity.ReasonKeyUnavailable, Provider: v.cfg.Name, Detail: "sts unreachable", Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil || len(body) > maxResponseBytes {
		return callerIdentity{}, v.reject(identity.ReasonKeyUnavailable, "sts response unreadable or too large")
	}
	if resp.StatusCode != http.StatusOK {
		var e stsError
		_ = xml.Unmarshal(body, &e)
		if resp.StatusCode >= 500 {
			return callerIdentity{}, v.reject(identity.ReasonKeyUnavailable, "sts answered %d %s", resp.StatusCode, truncate(e.Code))
		}
		return callerIdentity{}, v.reject(ReasonSTSRejected, "sts answered %d %s", resp.StatusCode, truncate(e.Code))
	}
	var id callerIdentity
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&id); err != nil {
		return callerIdentity{}, v.reject(identity.ReasonInvalidClaims, "sts response is not a GetCallerIdentityResponse")
	}
	return id, nil
}

// principalFrom maps STS's answer to a principal. An assumed-role ARN
// (arn:aws:sts::A:assumed-role/R/S) is normalised to the role's ARN
// (arn:aws:iam::A:role/R) as the subject, so the subject is stable across
// sessions; the session is an attribute.
func principalFrom(id callerIdentity) (core.Principal, error) {
	a, err := ParseARN(id.Arn)
	if err != nil {
		return core.Principal{}, err
	}
	if id.Account == "" || id.Account != a.Account {
		return core.Principal{}, fmt.Errorf("account %q does not match the ARN", truncate(id.Account))
	}
	attrs := map[string]any{
		"account": id.Account, "arn": id.Arn, "user_id": id.UserID, "partition": a.Partition, "type": a.Type,
	}
	subject := id.Arn
	switch a.Type {
	case "assumed-role":
		subject = fmt.Sprintf("arn:%s:iam::%s:role/%s", a.Partition, a.Account, a.Name)
		attrs["role_name"] = a.Name
		attrs["session_name"] = a.Session
		attrs["role_arn"] = subject
	case "user":
		attrs["user_name"] = a.Name
	}
	return core.Principal{Kind: Kind, Subject: subject, Attributes: attrs}, nil
}

// ARN is the part of an IAM principal ARN stint uses.
type ARN struct {
	Partition string
	Service   string
	Account   string
	// Type is user, assumed-role, role, federated-user or root.
	Type string
	// Name is the user, role or federated user name (without path).
	Name string
	// Session is an assumed role's session name.
	Session string
}

// ParseARN parses an IAM or STS principal ARN.
func ParseARN(s string) (ARN, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[4] == "" {
		return ARN{}, fmt.Errorf("not a principal ARN: %q", truncate(s))
	}
	a := ARN{Partition: parts[1], Service: parts[2], Account: parts[4]}
	res := parts[5]
	switch {
	case res == "root":
		a.Type = "root"
	case a.Service == "sts" && strings.HasPrefix(res, "assumed-role/"):
		f := strings.Split(res, "/")
		if len(f) != 3 || f[1] == "" || f[2] == "" {
			return ARN{}, fmt.Errorf("malformed assumed-role ARN %q", truncate(s))
		}
		a.Type, a.Name, a.Session = "assumed-role", f[1], f[2]
	case a.Service == "sts" && strings.HasPrefix(res, "federated-user/"):
		a.Type, a.Name = "federated-user", strings.TrimPrefix(res, "federated-user/")
	case a.Service == "iam" && (strings.HasPrefix(res, "user/") || strings.HasPrefix(res, "role/")):
		t, rest, _ := strings.Cut(res, "/")
		a.Type, a.Name = t, rest[strings.LastIndex(rest, "/")+1:]
	default:
		return ARN{}, fmt.Errorf("unsupported principal ARN %q", truncate(s))
	}
	if a.Name == "" && a.Type != "root" {
		return ARN{}, fmt.Errorf("principal ARN without a name: %q", truncate(s))
	}
	return a, nil
}

// truncate bounds attacker-chosen text before it reaches a log line.
func truncate(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

var (
	_ identity.IssuerVerifier = (*Verifier)(nil)
	_ identity.ProofVerifier  = (*Verifier)(nil)
)
