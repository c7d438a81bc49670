package awsiam_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/stint-dev/stint/internal/agent/awsproof"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/identity/awsiam"
	"github.com/stint-dev/stint/internal/issuer/awssts/ststest"
)

const (
	serverID = "stint-test.example"
	account  = "111122223333"
	roleAKID = "ASIAROLEEXAMPLE0001"
	roleSK   = "role-secret-key-example"
	roleTok  = "role-session-token-example"
	userAKID = "AKIAUSEREXAMPLE0001"
	userSK   = "user-secret-key-example"
)

type fixture struct {
	sts  *ststest.Server
	v    *awsiam.Verifier
	role aws.Credentials
	user aws.Credentials
}

func newFixture(t *testing.T, mod func(*awsiam.Config)) *fixture {
	t.Helper()
	s := ststest.New()
	t.Cleanup(s.Close)
	s.AddSession(roleAKID, roleSK, roleTok, ststest.Identity{
		Arn: "arn:aws:sts::" + account + ":assumed-role/ci-runner/i-0abc123", UserID: "AROAEXAMPLEROLEID:i-0abc123", Account: account,
	})
	s.AddUser(userAKID, userSK, ststest.Identity{Arn: "arn:aws:iam::" + account + ":user/ops/alice", UserID: "AIDAEXAMPLEUSER", Account: account})
	cfg := awsiam.Config{Name: "aws", Endpoints: []string{s.Endpoint()}, ServerID: serverID, HTTPClient: s.Client()}
	if mod != nil {
		mod(&cfg)
	}
	v, err := awsiam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{sts: s, v: v,
		role: aws.Credentials{AccessKeyID: roleAKID, SecretAccessKey: roleSK, SessionToken: roleTok},
		user: aws.Credentials{AccessKeyID: userAKID, SecretAccessKey: userSK},
	}
}

// sdkProof makes a proof the way agents do: awsproof with the real SDK.
func (f *fixture) sdkProof(t *testing.T, c aws.Credentials, sid string, now time.Time) string {
	t.Helper()
	src, err := awsproof.New(awsproof.Options{
		ServerID: sid, Endpoint: f.sts.Endpoint(), Now: func() time.Time { return now },
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signed builds a hand-shaped signed request, for the proofs a
// well-behaved client would never make.
type signed struct {
	method, url, body string
	header            map[string]string
	at                time.Time
	signServerID      bool
	after             func(p *awsiam.Proof) // tampering after signing
}

func (f *fixture) custom(t *testing.T, s signed) string {
	t.Helper()
	if s.method == "" {
		s.method = http.MethodPost
	}
	if s.url == "" {
		s.url = f.sts.Endpoint()
	}
	if s.at.IsZero() {
		s.at = time.Now()
	}
	req, err := http.NewRequest(s.method, s.url, strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	for k, v := range s.header {
		req.Header.Set(k, v)
	}
	if s.signServerID {
		req.Header.Set(awsiam.ServerIDHeader, serverID)
	}
	sum := sha256.Sum256([]byte(s.body))
	if err := v4.NewSigner().SignHTTP(context.Background(), f.role, req, hex.EncodeToString(sum[:]), "sts", "us-east-1", s.at); err != nil {
		t.Fatal(err)
	}
	if !s.signServerID {
		req.Header.Set(awsiam.ServerIDHeader, serverID) // added after signing: unsigned
	}
	p := awsiam.Proof{Method: s.method, URL: s.url, Headers: req.Header, Body: s.body}
	if s.after != nil {
		s.after(&p)
	}
	tok, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify_LocalSTSSpeakingQueryXML_RoleProofBecomesRolePrincipal(t *testing.T) {
	f := newFixture(t, func(c *awsiam.Config) { c.Attributes = map[string]string{"env": "prod"} })
	p, err := f.v.Verify(context.Background(), f.sdkProof(t, f.role, serverID, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"account": account, "arn": "arn:aws:sts::" + account + ":assumed-role/ci-runner/i-0abc123",
		"user_id": "AROAEXAMPLEROLEID:i-0abc123", "role_name": "ci-runner", "session_name": "i-0abc123",
		"role_arn": "arn:aws:iam::" + account + ":role/ci-runner", "partition": "aws", "type": "assumed-role", "env": "prod",
	}
	if p.Subject != "arn:aws:iam::"+account+":role/ci-runner" || p.Kind != "aws-iam" || p.Provider != "aws" {
		t.Fatalf("principal = %+v", p)
	}
	for k, v := range want {
		if p.Attributes[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, p.Attributes[k], v)
		}
	}
	if p.ExpiresAt.Before(time.Now().Add(14*time.Minute)) || p.ExpiresAt.After(time.Now().Add(16*time.Minute)) {
		t.Errorf("expires_at %s is not signing time + 15m", p.ExpiresAt)
	}
	calls := f.sts.Calls("GetCallerIdentity")
	if len(calls) != 1 {
		t.Fatalf("sts saw %d GetCallerIdentity calls, want 1", len(calls))
	}
	if calls[0].Header.Get("X-Stint-Server-Id") != serverID {
		t.Errorf("forwarded request lost the server id header")
	}
}

func TestVerify_LocalSTSSpeakingQueryXML_UserProof(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.v.Verify(context.Background(), f.sdkProof(t, f.user, serverID, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "arn:aws:iam::"+account+":user/ops/alice" || p.Attr("user_name") != "alice" || p.Attr("type") != "user" {
		t.Fatalf("principal = %+v", p)
	}
	if _, ok := p.Attributes["role_name"]; ok {
		t.Errorf("a user has no role_name")
	}
}

func TestVerify_LocalSTSSpeakingQueryXML_GETQueryForm(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.custom(t, signed{method: http.MethodGet, url: f.sts.Endpoint() + "?Action=GetCallerIdentity&Version=2011-06-15", signServerID: true})
	p, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Attr("role_name") != "ci-runner" {
		t.Fatalf("principal = %+v", p)
	}
}

func TestVerify_RefusesBadProofs(t *testing.T) {
	const gci = "Action=GetCallerIdentity&Version=2011-06-15"
	cases := []struct {
		name       string
		proof      func(f *fixture) string
		reason     string
		reachesSTS bool
	}{
		{"wrong server id", func(f *fixture) string { return f.sdkProof(t, f.role, "another-stint", time.Now()) }, awsiam.ReasonWrongServerID, false},
		{"server id not signed", func(f *fixture) string { return f.custom(t, signed{body: gci}) }, awsiam.ReasonWrongServerID, false},
		{"signed 20 minutes ago", func(f *fixture) string { return f.sdkProof(t, f.role, serverID, time.Now().Add(-20*time.Minute)) }, identity.ReasonExpired, false},
		{"signed 20 minutes ahead", func(f *fixture) string { return f.sdkProof(t, f.role, serverID, time.Now().Add(20*time.Minute)) }, identity.ReasonIssuedInFuture, false},
		{"another action", func(f *fixture) string {
			return f.custom(t, signed{body: "Action=GetSessionToken&Version=2011-06-15", signServerID: true})
		}, awsiam.ReasonActionNotAllowed, false},
		{"extra parameter", func(f *fixture) string {
			return f.custom(t, signed{body: gci + "&DurationSeconds=900", signServerID: true})
		}, awsiam.ReasonActionNotAllowed, false},
		{"action in the query of a POST", func(f *fixture) string {
			return f.custom(t, signed{url: f.sts.Endpoint() + "?Action=AssumeRole", body: gci, signServerID: true})
		}, awsiam.ReasonActionNotAllowed, false},
		{"non-STS host", func(f *fixture) string {
			return f.custom(t, signed{url: "https://attacker.example/", body: gci, signServerID: true})
		}, awsiam.ReasonEndpointNotAllowed, false},
		{"STS look-alike path", func(f *fixture) string {
			return f.custom(t, signed{url: f.sts.Endpoint() + "other", body: gci, signServerID: true})
		}, awsiam.ReasonEndpointNotAllowed, false},
		{"https swapped for the http endpoint", func(f *fixture) string {
			return f.custom(t, signed{url: strings.Replace(f.sts.Endpoint(), "http://", "https://", 1), body: gci, signServerID: true})
		}, awsiam.ReasonEndpointNotAllowed, false},
		{"tampered signed header", func(f *fixture) string {
			return f.custom(t, signed{body: gci, signServerID: true, header: map[string]string{"X-Amz-Meta-Note": "a"}, after: func(p *awsiam.Proof) {
				p.Headers.Set("X-Amz-Meta-Note", "b")
			}})
		}, awsiam.ReasonSTSRejected, true},
		{"tampered date within the window", func(f *fixture) string {
			return f.custom(t, signed{body: gci, signServerID: true, after: func(p *awsiam.Proof) {
				at, _ := time.Parse("20060102T150405Z", p.Headers.Get("X-Amz-Date"))
				p.Headers.Set("X-Amz-Date", at.Add(-time.Second).Format("20060102T150405Z"))
			}})
		}, awsiam.ReasonSTSRejected, true},
		{"tampered body case", func(f *fixture) string {
			return f.custom(t, signed{body: gci, signServerID: true, after: func(p *awsiam.Proof) { p.Body = gci[:len(gci)-1] + "6" }})
		}, awsiam.ReasonSTSRejected, true},
		{"unknown credentials", func(f *fixture) string {
			return f.sdkProof(t, aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}, serverID, time.Now())
		}, awsiam.ReasonSTSRejected, true},
		{"not SigV4", func(f *fixture) string {
			return f.custom(t, signed{body: gci, signServerID: true, after: func(p *awsiam.Proof) { p.Headers.Set("Authorization", "Basic Zm9vOmJhcg==") }})
		}, identity.ReasonUnsupportedAlg, false},
		{"duplicate header values", func(f *fixture) string {
			return f.custom(t, signed{body: gci, signServerID: true, after: func(p *awsiam.Proof) { p.Headers.Add(awsiam.ServerIDHeader, serverID) }})
		}, identity.ReasonMalformed, false},
		{"PUT method", func(f *fixture) string {
			return f.custom(t, signed{method: http.MethodPut, body: gci, signServerID: true})
		}, awsiam.ReasonActionNotAllowed, false},
		{"not base64url", func(*fixture) string { return awsiam.Prefix + "!!!" }, identity.ReasonMalformed, false},
		{"unknown JSON field", func(*fixture) string { return awsiam.Prefix + "eyJ4IjoxfQ" }, identity.ReasonMalformed, false},
		{"oversized", func(*fixture) string { return awsiam.Prefix + strings.Repeat("A", awsiam.MaxProofSize) }, identity.ReasonTooLarge, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.v.Verify(context.Background(), c.proof(f))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := identity.Reason(err); got != c.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, c.reason)
			}
			if reached := f.sts.Requests() > 0; reached != c.reachesSTS {
				t.Errorf("reached STS = %v, want %v", reached, c.reachesSTS)
			}
			if strings.Contains(err.Error(), roleSK) || strings.Contains(err.Error(), roleTok) || strings.Contains(err.Error(), "Signature=") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestVerify_AllowLists(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(*awsiam.Config)
		accept bool
	}{
		{"account allowed", func(c *awsiam.Config) { c.Accounts = []string{account} }, true},
		{"account not allowed", func(c *awsiam.Config) { c.Accounts = []string{"999999999999"} }, false},
		{"role pattern matches", func(c *awsiam.Config) { c.RoleARNs = []string{"arn:aws:iam::" + account + ":role/ci-*"} }, true},
		{"role pattern does not match", func(c *awsiam.Config) { c.RoleARNs = []string{"arn:aws:iam::" + account + ":role/deploy"} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.mod)
			_, err := f.v.Verify(context.Background(), f.sdkProof(t, f.role, serverID, time.Now()))
			if (err == nil) != c.accept {
				t.Fatalf("err = %v, want accept=%v", err, c.accept)
			}
			if err != nil && identity.Reason(err) != awsiam.ReasonPrincipalNotAllowed {
				t.Fatalf("reason = %q", identity.Reason(err))
			}
		})
	}
}

func TestNew_RefusesUnsafeEndpoints(t *testing.T) {
	for _, ep := range []string{"http://sts.amazonaws.com/", "ftp://x/", "https://sts.amazonaws.com/?a=b", "https://u:p@sts.amazonaws.com/", "sts.amazonaws.com"} {
		if _, err := awsiam.New(awsiam.Config{Name: "a", Endpoints: []string{ep}, ServerID: "x"}); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
	if _, err := awsiam.New(awsiam.Config{Name: "a", Endpoints: []string{"http://127.0.0.1:1/"}, ServerID: "x"}); err != nil {
		t.Errorf("loopback http test endpoint refused: %v", err)
	}
	if _, err := awsiam.New(awsiam.Config{Name: "a", Endpoints: awsiam.DefaultEndpoints([]string{"eu-west-1"}), ServerID: ""}); err == nil {
		t.Error("empty server id accepted")
	}
}

func TestRouter_DispatchesProofsByServerIDAndKeepsJWTPath(t *testing.T) {
	a := newFixture(t, nil)
	other, err := awsiam.New(awsiam.Config{Name: "other", Endpoints: []string{a.sts.Endpoint()}, ServerID: "other-id", HTTPClient: a.sts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := identity.NewRouter(other, a.v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Verify(context.Background(), a.sdkProof(t, a.role, serverID, time.Now()))
	if err != nil || p.Provider != "aws" {
		t.Fatalf("routed to %q, err %v", p.Provider, err)
	}
	p, err = r.Verify(context.Background(), a.sdkProof(t, a.role, "other-id", time.Now()))
	if err != nil || p.Provider != "other" {
		t.Fatalf("routed to %q, err %v", p.Provider, err)
	}
	if _, err := r.Verify(context.Background(), a.sdkProof(t, a.role, "nobody", time.Now())); identity.Reason(err) != identity.ReasonUnknownIssuer {
		t.Fatalf("unclaimed proof: %v", err)
	}
	if _, err := r.Verify(context.Background(), "x:y"); identity.Reason(err) != identity.ReasonMalformed {
		t.Fatalf("unknown prefix must take the JWT path and be malformed, got %v", err)
	}
}

func TestParseARN(t *testing.T) {
	cases := []struct {
		in   string
		want awsiam.ARN
		ok   bool
	}{
		{"arn:aws:sts::1:assumed-role/r/s", awsiam.ARN{Partition: "aws", Service: "sts", Account: "1", Type: "assumed-role", Name: "r", Session: "s"}, true},
		{"arn:aws-cn:iam::1:user/p/q/u", awsiam.ARN{Partition: "aws-cn", Service: "iam", Account: "1", Type: "user", Name: "u"}, true},
		{"arn:aws:iam::1:root", awsiam.ARN{Partition: "aws", Service: "iam", Account: "1", Type: "root"}, true},
		{"arn:aws:sts::1:federated-user/bob", awsiam.ARN{Partition: "aws", Service: "sts", Account: "1", Type: "federated-user", Name: "bob"}, true},
		{"arn:aws:sts::1:assumed-role/r", awsiam.ARN{}, false},
		{"arn:aws:s3:::bucket", awsiam.ARN{}, false},
		{"not-an-arn", awsiam.ARN{}, false},
	}
	for _, c := range cases {
		got, err := awsiam.ParseARN(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseARN(%q) = %+v, %v", c.in, got, err)
		}
	}
}
