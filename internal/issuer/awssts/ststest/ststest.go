// Package ststest is a local AWS STS (and the one IAM call stint makes)
// for tests: an httptest server that speaks the documented Query/XML wire
// format for GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity and
// iam:PutRolePolicy, and checks every SigV4 signature by re-signing the
// received request with the SDK's own signer and the known test
// credentials. AWS itself cannot be reached from the test machines; this is
// the fake of what cannot be reached, kept to the documented protocol.
package ststest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const ns = "https://sts.amazonaws.com/doc/2011-06-15/"

// Identity is who a set of credentials belongs to, as GetCallerIdentity reports it.
type Identity struct {
	Arn     string
	UserID  string
	Account string
}

// Call is one request the server accepted, with its decoded parameters.
type Call struct {
	Action string
	// Caller is the identity of the signing credentials ("" when unsigned).
	Caller Identity
	// Params are the form (or query) parameters, Action and Version included.
	Params url.Values
	// Header is the request's headers as received.
	Header http.Header
	// Duration is how long the handler took.
	Duration time.Duration
}

// Tags returns the session tags of an AssumeRole call (Tags.member.N.Key/Value).
func (c Call) Tags() map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k := c.Params.Get(fmt.Sprintf("Tags.member.%d.Key", i))
		if k == "" {
			return out
		}
		out[k] = c.Params.Get(fmt.Sprintf("Tags.member.%d.Value", i))
	}
}

// PolicyArns returns the managed policy ARNs of an AssumeRole call.
func (c Call) PolicyArns() []string {
	var out []string
	for i := 1; ; i++ {
		a := c.Params.Get(fmt.Sprintf("PolicyArns.member.%d.arn", i))
		if a == "" {
			return out
		}
		out = append(out, a)
	}
}

type secret struct {
	secretKey    string
	sessionToken string
	id           Identity
}

// Server is the local STS.
type Server struct {
	*httptest.Server
	// Now is the server's clock for the signature-age check (default time.Now).
	Now func() time.Time
	// VerifyWebIdentity checks a web identity token (signature, issuer,
	// audience) and returns its subject; nil refuses every token.
	VerifyWebIdentity func(token string) (subject, audience string, err error)

	mu           sync.Mutex
	creds        map[string]secret
	roles        map[string]int32 // role ARN → max session duration (s)
	calls        []Call
	rolePolicies map[string]string // role name + "/" + policy name → document
	received     int
}

// New starts a local STS on a loopback http listener.
func New() *Server {
	s := &Server{Now: time.Now, creds: map[string]secret{}, roles: map[string]int32{}, rolePolicies: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL of the endpoint with a trailing slash, as configured in stint.
func (s *Server) Endpoint() string { return s.Server.URL + "/" }

// AddUser makes long-term credentials known, with the identity they report.
func (s *Server) AddUser(accessKeyID, secretKey string, id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKeyID] = secret{secretKey: secretKey, id: id}
}

// AddSession makes temporary credentials known (the session token must match).
func (s *Server) AddSession(accessKeyID, secretKey, sessionToken string, id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKeyID] = secret{secretKey: secretKey, sessionToken: sessionToken, id: id}
}

// AddRole makes a role assumable with the given maximum session duration.
func (s *Server) AddRole(arn string, maxSessionDuration time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[arn] = int32(maxSessionDuration / time.Second)
}

// Calls returns the accepted calls of an action ("" for all).
func (s *Server) Calls(action string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Requests counts every request received, accepted or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// RolePolicy returns an inline role policy put through iam:PutRolePolicy.
func (s *Server) RolePolicy(roleName, policyName string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.rolePolicies[roleName+"/"+policyName]
	return d, ok
}

// Reset forgets recorded calls and counts.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.received = 0
}

type stsError struct {
	status  int
	code    string
	message string
}

func fail(status int, code, format string, args ...any) *stsError {
	return &stsError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.mu.Lock()
	s.received++
	s.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, fail(400, "InvalidRequest", "read body: %v", err))
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, fail(400, "MalformedQueryString", "bad form body"))
			return
		}
		for k, v := range form {
			params[k] = v
		}
	} else if r.Method != http.MethodGet {
		writeError(w, fail(405, "InvalidAction", "method %s", r.Method))
		return
	}
	action := params.Get("Action")
	call := Call{Action: action, Params: params, Header: r.Header.Clone()}
	var out any
	var e *stsError
	switch action {
	case "GetCallerIdentity":
		call.Caller, e = s.verify(r, body, "sts")
		if e == nil {
			out = getCallerIdentityResponse{Xmlns: ns, Arn: call.Caller.Arn, UserID: call.Caller.UserID, Account: call.Caller.Account, RequestID: requestID()}
		}
	case "AssumeRole":
		if call.Caller, e = s.verify(r, body, "sts"); e == nil {
			out, e = s.assumeRole(params, call.Caller)
		}
	case "AssumeRoleWithWebIdentity":
		// Unsigned by design: the token is the credential.
		out, e = s.assumeRoleWithWebIdentity(params)
	case "PutRolePolicy":
		if call.Caller, e = s.verify(r, body, "iam"); e == nil {
			out, e = s.putRolePolicy(params)
		}
	default:
		e = fail(400, "InvalidAction", "could not find operation %s", action)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	call.Duration = time.Since(start)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(out)
}

// verify checks the SigV4 Authorization header: it rebuilds the request
// from the signed headers only, signs it with the SDK's signer and the
// known secret at the claimed time, and compares signatures.
func (s *Server) verify(r *http.Request, body []byte, service string) (Identity, *stsError) {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return Identity{}, fail(403, "MissingAuthenticationToken", "request is missing Authentication Token")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != service || scope[4] != "aws4_request" {
		return Identity{}, fail(403, "IncompleteSignature", "bad credential scope")
	}
	s.mu.Lock()
	sec, known := s.creds[scope[0]]
	s.mu.Unlock()
	if !known {
		return Identity{}, fail(403, "InvalidClientTokenId", "the security token included in the request is invalid")
	}
	if sec.sessionToken != "" && r.Header.Get("X-Amz-Security-Token") != sec.sessionToken {
		return Identity{}, fail(403, "InvalidClientTokenId", "the security token included in the request is invalid")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return Identity{}, fail(403, "IncompleteSignature", "missing X-Amz-Date")
	}
	if d := s.Now().Sub(at); d > 15*time.Minute || d < -15*time.Minute {
		return Identity{}, fail(403, "SignatureDoesNotMatch", "Signature expired")
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	req, err := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return Identity{}, fail(400, "InvalidRequest", "rebuild request: %v", err)
	}
	req.Host = r.Host
	req.Header = http.Header{}
	req.ContentLength = 0
	for _, h := range signed {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: scope[0], SecretAccessKey: sec.secretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if !slices.Contains(signed, "x-amz-security-token") {
		creds.SessionToken = ""
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, scope[2], at); err != nil {
		return Identity{}, fail(500, "InternalFailure", "sign: %v", err)
	}
	if !hmac.Equal([]byte(req.Header.Get("Authorization")), []byte(auth)) {
		return Identity{}, fail(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided")
	}
	return sec.id, nil
}

var validName = func(s string) bool {
	if len(s) < 2 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+=,.@-", c)) {
			return false
		}
	}
	return true
}

func (s *Server) duration(p url.Values, roleArn string) (time.Duration, *stsError) {
	s.mu.Lock()
	max, ok := s.roles[roleArn]
	s.mu.Unlock()
	if !ok {
		return 0, fail(403, "AccessDenied", "not authorized to perform sts:AssumeRole on %s", roleArn)
	}
	d := int64(3600)
	if v := p.Get("DurationSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 900 || n > int64(max) {
			return 0, fail(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		d = n
	}
	return time.Duration(d) * time.Second, nil
}

func (s *Server) issue(roleArn, session string, d time.Duration) (credentialsXML, assumedRoleUser) {
	account, name := splitRoleArn(roleArn)
	akid := "ASIA" + strings.ToUpper(randomHex(8))
	sk, tok := randomHex(20), "FQoGZXIvYXdzE"+randomHex(40)
	roleID := "AROA" + strings.ToUpper(randomHex(8))
	arn := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, name, session)
	s.AddSession(akid, sk, tok, Identity{Arn: arn, UserID: roleID + ":" + session, Account: account})
	return credentialsXML{AccessKeyID: akid, SecretAccessKey: sk, SessionToken: tok, Expiration: s.Now().Add(d).UTC().Format("2006-01-02T15:04:05Z")},
		assumedRoleUser{Arn: arn, AssumedRoleID: roleID + ":" + session}
}

func (s *Server) assumeRole(p url.Values, _ Identity) (any, *stsError) {
	roleArn, session := p.Get("RoleArn"), p.Get("RoleSessionName")
	if !validName(session) {
		return nil, fail(400, "ValidationError", "invalid RoleSessionName")
	}
	if si := p.Get("SourceIdentity"); si != "" && (!validName(si) || strings.HasPrefix(strings.ToLower(si), "aws:")) {
		return nil, fail(400, "ValidationError", "invalid SourceIdentity")
	}
	if pol := p.Get("Policy"); len(pol) > 2048 {
		return nil, fail(400, "PackedPolicyTooLarge", "policy too large")
	}
	d, e := s.duration(p, roleArn)
	if e != nil {
		return nil, e
	}
	c, u := s.issue(roleArn, session, d)
	return assumeRoleResponse{Xmlns: ns, Result: assumeRoleResult{Credentials: c, AssumedRoleUser: u, SourceIdentity: p.Get("SourceIdentity")}, RequestID: requestID()}, nil
}

func (s *Server) assumeRoleWithWebIdentity(p url.Values) (any, *stsError) {
	roleArn, session, tok := p.Get("RoleArn"), p.Get("RoleSessionName"), p.Get("WebIdentityToken")
	if !validName(session) {
		return nil, fail(400, "ValidationError", "invalid RoleSessionName")
	}
	if s.VerifyWebIdentity == nil {
		return nil, fail(400, "InvalidIdentityToken", "no OpenID Connect provider found")
	}
	sub, aud, err := s.VerifyWebIdentity(tok)
	if err != nil {
		return nil, fail(400, "InvalidIdentityToken", "%v", err)
	}
	d, e := s.duration(p, roleArn)
	if e != nil {
		return nil, e
	}
	c, u := s.issue(roleArn, session, d)
	return webIdentityResponse{Xmlns: ns, Result: webIdentityResult{
		Credentials: c, AssumedRoleUser: u, SubjectFromWebIdentityToken: sub, Audience: aud, Provider: "stint",
	}, RequestID: requestID()}, nil
}

func (s *Server) putRolePolicy(p url.Values) (any, *stsError) {
	role, name, doc := p.Get("RoleName"), p.Get("PolicyName"), p.Get("PolicyDocument")
	if role == "" || name == "" || doc == "" {
		return nil, fail(400, "ValidationError", "RoleName, PolicyName and PolicyDocument are required")
	}
	s.mu.Lock()
	s.rolePolicies[role+"/"+name] = doc
	s.mu.Unlock()
	return putRolePolicyResponse{Xmlns: "https://iam.amazonaws.com/doc/2010-05-08/", RequestID: requestID()}, nil
}

// splitRoleArn returns the account and role name (without path).
func splitRoleArn(arn string) (account, name string) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 {
		account = parts[4]
		res := parts[5]
		name = res[strings.LastIndex(res, "/")+1:]
	}
	return account, name
}

func writeError(w http.ResponseWriter, e *stsError) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	_ = xml.NewEncoder(w).Encode(errorResponse{Xmlns: ns, Error: errorXML{Type: typ, Code: e.code, Message: e.message}, RequestID: requestID()})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func requestID() string { return randomHex(16) }

type getCallerIdentityResponse struct {
	XMLName   xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

type credentialsXML struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type assumeRoleResult struct {
	Credentials     credentialsXML  `xml:"Credentials"`
	AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
	SourceIdentity  string          `xml:"SourceIdentity,omitempty"`
}

type assumeRoleResponse struct {
	XMLName   xml.Name         `xml:"AssumeRoleResponse"`
	Xmlns     string           `xml:"xmlns,attr"`
	Result    assumeRoleResult `xml:"AssumeRoleResult"`
	RequestID string           `xml:"ResponseMetadata>RequestId"`
}

type webIdentityResult struct {
	Credentials                 credentialsXML  `xml:"Credentials"`
	AssumedRoleUser             assumedRoleUser `xml:"AssumedRoleUser"`
	SubjectFromWebIdentityToken string          `xml:"SubjectFromWebIdentityToken"`
	Audience                    string          `xml:"Audience"`
	Provider                    string          `xml:"Provider"`
}

type webIdentityResponse struct {
	XMLName   xml.Name          `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns     string            `xml:"xmlns,attr"`
	Result    webIdentityResult `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string            `xml:"ResponseMetadata>RequestId"`
}

type putRolePolicyResponse struct {
	XMLName   xml.Name `xml:"PutRolePolicyResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

type errorXML struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Error     errorXML `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}
