package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/agent/awsproof"
	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/identity/awsiam"
	"github.com/stint-dev/stint/internal/issuer/awssts/ststest"
)

const (
	awsAccount  = "111122223333"
	awsServerID = "stint-e2e"
	// The workload's ambient credentials: an EC2/EKS role session.
	ciAKID = "ASIACIRUNNEREXAMPLE1"
	ciSK   = "ci-runner-secret-key"
	ciTok  = "ci-runner-session-token"
	// stint's own AWS credentials, found by the SDK's default chain.
	stintAKID = "AKIASTINTEXAMPLE0001"
	stintSK   = "stint-own-secret-key"
)

const awsConfig = `
server:
  store: sqlite://{{dir}}/stint.db
  issuer_url: {{url}}
identity_providers:
  - name: aws
    type: aws-iam
    sts_endpoints: [{{sts}}]
    server_id: ` + awsServerID + `
    accounts: ["` + awsAccount + `"]
    attributes: { cloud: aws }
targets:
  - name: aws
    type: aws-sts
    sts_endpoint: {{sts}}
    roles:
      reader:
        kind: assume_role
        role_arn: arn:aws:iam::` + awsAccount + `:role/orders-reader
        session_name: "{{ .identity.role_name }}.{{ .identity.session_name }}"
        policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
        policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]
        session_tags: { caller-role: "{{ .identity.role_name }}", caller-account: "{{ .identity.account }}" }
        max_session_duration: 2h
      web:
        kind: web_identity
        role_arn: arn:aws:iam::` + awsAccount + `:role/orders-reader
policies:
  - name: ci-runner-reads-orders
    grants: [aws/*]
    max_ttl: 1h
    when: identity.provider == "aws" && identity.role_name == "ci-runner" && identity.account == "` + awsAccount + `"
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

type awsEnv struct {
	*env
	sts *ststest.Server
	ci  aws.Credentials
}

// newAWSEnv starts a local STS and a stint whose aws-iam provider and
// aws-sts target both point at it. stint's own AWS credentials come from
// the SDK's default chain (the environment here).
func newAWSEnv(t *testing.T) *awsEnv {
	t.Helper()
	s := ststest.New()
	t.Cleanup(s.Close)
	s.AddSession(ciAKID, ciSK, ciTok, ststest.Identity{
		Arn: "arn:aws:sts::" + awsAccount + ":assumed-role/ci-runner/i-0abc123", UserID: "AROACIRUNNER:i-0abc123", Account: awsAccount,
	})
	s.AddUser(stintAKID, stintSK, ststest.Identity{Arn: "arn:aws:iam::" + awsAccount + ":user/stint", UserID: "AIDASTINT", Account: awsAccount})
	s.AddRole("arn:aws:iam::"+awsAccount+":role/orders-reader", 2*time.Hour)
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", stintAKID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", stintSK)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := newEnvConfig(t, strings.ReplaceAll(awsConfig, "{{sts}}", s.Endpoint()))
	ae := &awsEnv{env: e, sts: s, ci: aws.Credentials{AccessKeyID: ciAKID, SecretAccessKey: ciSK, SessionToken: ciTok}}
	s.VerifyWebIdentity = ae.verifyLikeAWS
	return ae
}

// verifyLikeAWS is what AWS does with a token from an IAM OIDC provider:
// fetch the issuer's discovery document and JWKS, check the signature,
// iss and the audience registered as client ID (sts.amazonaws.com).
func (e *awsEnv) verifyLikeAWS(tok string) (string, string, error) {
	resp, err := http.Get(e.url + "/.well-known/openid-configuration")
	if err != nil {
		return "", "", err
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil {
		return "", "", err
	}
	resp, err = http.Get(disc.JWKSURI)
	if err != nil {
		return "", "", err
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		return "", "", err
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return "", "", err
	}
	var c jwt.Claims
	if err := parsed.Claims(set, &c); err != nil {
		return "", "", fmt.Errorf("signature against stint's JWKS: %w", err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: disc.Issuer, AnyAudience: jwt.Audience{"sts.amazonaws.com"}, Time: time.Now()}, 0); err != nil {
		return "", "", err
	}
	return c.Subject, "sts.amazonaws.com", nil
}

func (e *awsEnv) proof(t *testing.T, serverID string, at time.Time) string {
	t.Helper()
	src, err := awsproof.New(awsproof.Options{
		ServerID: serverID, Endpoint: e.sts.Endpoint(), Now: func() time.Time { return at },
		Credentials: credentials.NewStaticCredentialsProvider(e.ci.AccessKeyID, e.ci.SecretAccessKey, e.ci.SessionToken),
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

func TestAWSIAMToAssumeRole_LocalSTSSpeakingQueryXML_EndToEnd(t *testing.T) {
	e := newAWSEnv(t)
	code, res := e.post("/v1/credentials", e.proof(t, awsServerID, time.Now()), map[string]any{"target": "aws", "role": "reader", "ttl": "20m"})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	cred := res["credential"].(map[string]any)
	for _, k := range []string{"access_key_id", "secret_access_key", "session_token", "expiration"} {
		if s, _ := cred[k].(string); s == "" {
			t.Fatalf("credential lacks %s: %v", k, cred)
		}
	}
	if gci := e.sts.Calls("GetCallerIdentity"); len(gci) != 1 || gci[0].Caller.Arn != "arn:aws:sts::"+awsAccount+":assumed-role/ci-runner/i-0abc123" {
		t.Fatalf("GetCallerIdentity calls %+v", gci)
	}
	calls := e.sts.Calls("AssumeRole")
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls", len(calls))
	}
	c := calls[0]
	for k, want := range map[string]string{
		"RoleSessionName": "ci-runner.i-0abc123",
		"SourceIdentity":  "arn-aws-iam--" + awsAccount + "-role-ci-runner",
		"DurationSeconds": "1200",
		"Policy":          `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`,
	} {
		if got := c.Params.Get(k); got != want {
			t.Errorf("AssumeRole %s = %q, want %q", k, got, want)
		}
	}
	if tags := c.Tags(); tags["caller-role"] != "ci-runner" || tags["caller-account"] != awsAccount || len(tags) != 2 {
		t.Errorf("tags = %v", tags)
	}
	if arns := c.PolicyArns(); len(arns) != 1 || arns[0] != "arn:aws:iam::aws:policy/ReadOnlyAccess" {
		t.Errorf("policy arns = %v", arns)
	}
	if c.Caller.Arn != "arn:aws:iam::"+awsAccount+":user/stint" {
		t.Errorf("AssumeRole signed by %q, want stint's default-chain credentials", c.Caller.Arn)
	}
	// The SDK uses the issued credentials as the assumed role.
	client := sts.NewFromConfig(aws.Config{Region: "us-east-1", HTTPClient: e.sts.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(cred["access_key_id"].(string), cred["secret_access_key"].(string), cred["session_token"].(string))},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(e.sts.Endpoint()) })
	id, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Arn) != "arn:aws:sts::"+awsAccount+":assumed-role/orders-reader/ci-runner.i-0abc123" {
		t.Errorf("issued credentials are %s", aws.ToString(id.Arn))
	}
	// Revoking records and audits; STS sessions cannot be recalled.
	lease := res["lease_id"].(string)
	code, rev := e.post("/v1/leases/"+lease+"/revoke", e.proof(t, awsServerID, time.Now()), nil)
	if code != 200 || rev["state"] != "revoked" {
		t.Fatalf("revoke: %d %v", code, rev)
	}
	e.app.Audit.Close()
	var issued, revoked bool
	readAudit(t, e.dir, func(ev audit.Event) {
		b, _ := json.Marshal(ev)
		for _, secret := range []string{ciSK, ciTok, stintSK, cred["secret_access_key"].(string), cred["session_token"].(string)} {
			if strings.Contains(string(b), secret) {
				t.Errorf("audit event %s holds a secret", ev.Type)
			}
		}
		if ev.Type == audit.CredentialIssue && ev.LeaseID == lease && ev.Outcome == audit.OutcomeSuccess {
			issued = true
			// What finds the session in CloudTrail, none of it secret.
			if ev.Details["access_key_id"] != cred["access_key_id"] || ev.Details["session_name"] != "ci-runner.i-0abc123" ||
				ev.Details["role_arn"] == nil || ev.Details["expiration"] != cred["expiration"] {
				t.Errorf("issue event details %v lack the session's identifiers", ev.Details)
			}
		}
		revoked = revoked || ev.Type == audit.CredentialRevoke && ev.LeaseID == lease
	})
	if !issued || !revoked {
		t.Errorf("audit: issued=%v revoked=%v", issued, revoked)
	}
}

func TestAWSIAMToWebIdentity_LocalSTSSpeakingQueryXML_JWTVerifiesAgainstStintJWKS(t *testing.T) {
	e := newAWSEnv(t)
	code, res := e.post("/v1/credentials", e.proof(t, awsServerID, time.Now()), map[string]any{"target": "aws", "role": "web"})
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	calls := e.sts.Calls("AssumeRoleWithWebIdentity")
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRoleWithWebIdentity calls", len(calls))
	}
	// The local STS accepted the token only after verifying it against
	// stint's discovery and JWKS with aud sts.amazonaws.com; check the claims too.
	claims := e.verify(calls[0].Params.Get("WebIdentityToken"), "sts.amazonaws.com")
	if claims["sub"] != "arn:aws:iam::"+awsAccount+":role/ci-runner" {
		t.Errorf("sub = %v", claims["sub"])
	}
	if claims["https://aws.amazon.com/source_identity"] != "arn-aws-iam--"+awsAccount+"-role-ci-runner" {
		t.Errorf("source identity claim = %v", claims["https://aws.amazon.com/source_identity"])
	}
	if calls[0].Header.Get("Authorization") != "" {
		t.Error("web identity call was signed with AWS credentials")
	}
}

func TestAWSIAMBadProofsAreRefusedAndAudited(t *testing.T) {
	e := newAWSEnv(t)
	gci := "Action=GetCallerIdentity&Version=2011-06-15"
	// sign builds a proof a well-behaved client would never send.
	sign := func(method, target, body string, tamper func(h http.Header)) string {
		req, _ := http.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Header.Set(awsiam.ServerIDHeader, awsServerID)
		req.Header.Set("X-Amz-Meta-Purpose", "login")
		if err := v4.NewSigner().SignHTTP(context.Background(), e.ci, req, sha256Hex(body), "sts", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		if tamper != nil {
			tamper(req.Header)
		}
		tok, err := awsiam.Proof{Method: method, URL: target, Headers: req.Header, Body: body}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := map[string]struct {
		proof  string
		reason string
	}{
		"wrong server id": {e.proof(t, "some-other-stint", time.Now()), awsiam.ReasonWrongServerID},
		"old date":        {e.proof(t, awsServerID, time.Now().Add(-16*time.Minute)), "expired"},
		"another action":  {sign("POST", e.sts.Endpoint(), "Action=AssumeRole&Version=2011-06-15", nil), awsiam.ReasonActionNotAllowed},
		"non-STS host":    {sign("POST", "https://sts.attacker.example/", gci, nil), awsiam.ReasonEndpointNotAllowed},
		"tampered header": {sign("POST", e.sts.Endpoint(), gci, func(h http.Header) { h.Set("X-Amz-Meta-Purpose", "other") }), awsiam.ReasonSTSRejected},
	}
	var mu sync.Mutex
	stsBefore := e.sts.Requests()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, res := e.post("/v1/credentials", c.proof, map[string]any{"target": "aws", "role": "reader"})
			if code != 401 || res["error_description"] != "invalid identity token" {
				t.Fatalf("%d %v", code, res)
			}
		})
	}
	if n := len(e.sts.Calls("AssumeRole")); n != 0 {
		t.Fatalf("%d AssumeRole calls after refused proofs", n)
	}
	// Only the tampered proof got as far as STS (which refused the signature).
	if n := e.sts.Requests() - stsBefore; n != 1 {
		t.Errorf("STS saw %d requests, want 1 (the tampered one)", n)
	}
	e.app.Audit.Close()
	seen := map[string]bool{}
	readAudit(t, e.dir, func(ev audit.Event) {
		if ev.Type != audit.AuthFailure {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for name, c := range cases {
			if strings.Contains(ev.Error, "token rejected: "+c.reason) {
				seen[name] = true
			}
		}
		if strings.Contains(ev.Error, ciSK) || strings.Contains(ev.Error, ciTok) || strings.Contains(ev.Error, "Signature=") {
			t.Errorf("audit error leaks proof material: %s", ev.Error)
		}
	})
	for name := range cases {
		if !seen[name] {
			t.Errorf("no auth.failure with the reason for %q", name)
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
