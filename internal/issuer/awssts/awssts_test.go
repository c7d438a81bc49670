package awssts_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/awssts"
	"github.com/stint-dev/stint/internal/issuer/awssts/ststest"
)

const (
	account   = "111122223333"
	roleARN   = "arn:aws:iam::" + account + ":role/orders-reader"
	stintAKID = "AKIASTINTEXAMPLE0001"
	stintSK   = "stint-secret-key-example"
	issuerURL = "https://stint.example.com"
)

// testSigner signs like keys.Manager does (ES256 with a kid), so the fake
// STS can verify web identity tokens against its public JWKS.
type testSigner struct {
	key *ecdsa.PrivateKey
}

func (s testSigner) SignWithType(claims any, typ string) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	return jwt.Signed(sig).Claims(claims).Serialize()
}

// verifyWebIdentity is what AWS does with a token from a registered OIDC
// provider: signature against the provider's JWKS, iss, aud, exp.
func verifyWebIdentity(jwks jose.JSONWebKeySet, aud string) func(string) (string, string, error) {
	return func(tok string) (string, string, error) {
		t, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
		if err != nil {
			return "", "", err
		}
		var c jwt.Claims
		if err := t.Claims(jwks, &c); err != nil {
			return "", "", err
		}
		if err := c.Validate(jwt.Expected{Issuer: issuerURL, AnyAudience: jwt.Audience{aud}, Time: time.Now()}); err != nil {
			return "", "", err
		}
		return c.Subject, aud, nil
	}
}

type env struct {
	sts    *ststest.Server
	is     *awssts.Issuer
	signer testSigner
}

func newEnv(t *testing.T, roles map[string]awssts.RoleConfig) *env {
	t.Helper()
	s := ststest.New()
	t.Cleanup(s.Close)
	s.AddUser(stintAKID, stintSK, ststest.Identity{Arn: "arn:aws:iam::" + account + ":user/stint", UserID: "AIDASTINT", Account: account})
	s.AddRole(roleARN, 2*time.Hour)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := testSigner{key: key}
	s.VerifyWebIdentity = verifyWebIdentity(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256"}}}, awssts.DefaultAudience)
	is, err := awssts.New(context.Background(), awssts.Config{
		Name: "aws", Endpoint: s.Endpoint(), Roles: roles, IssuerURL: issuerURL, Signer: signer,
		Credentials: credentials.NewStaticCredentialsProvider(stintAKID, stintSK, ""), HTTPClient: s.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sts: s, is: is, signer: signer}
}

var (
	bot = core.Principal{Provider: "prod", Kind: "kubernetes", Subject: "system:serviceaccount:agents:support-bot",
		Attributes: map[string]any{"namespace": "agents", "service_account": "support-bot"}}
	alice = &core.Principal{Provider: "sso", Kind: "oidc", Subject: "alice@example.com", Attributes: map[string]any{"email": "alice@example.com"}}
)

const sessionPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::orders/*"}]}`

func request(role string, p core.Principal, h *core.Principal, ttl time.Duration) issuer.Request {
	now := time.Now()
	return issuer.Request{LeaseID: "lease-0001", Role: role, Principal: p, Human: h, IssuedAt: now, ExpiresAt: now.Add(ttl)}
}

func assumeRoleConfig() awssts.RoleConfig {
	return awssts.RoleConfig{
		Kind: awssts.KindAssumeRole, RoleARN: roleARN, Policy: sessionPolicy,
		PolicyARNs:        []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
		SessionTags:       map[string]string{"namespace": "{{.identity.namespace}}", "on-behalf-of": "{{.human.subject}}"},
		TransitiveTagKeys: []string{"on-behalf-of"}, MaxSessionDuration: 2 * time.Hour,
	}
}

func TestAssumeRole_LocalSTSSpeakingQueryXML_SendsWhatPolicyAndAttributesDictate(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"reader": assumeRoleConfig()})
	res, err := e.is.Issue(context.Background(), request("reader", bot, alice, 15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	calls := e.sts.Calls("AssumeRole")
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls", len(calls))
	}
	c := calls[0]
	want := map[string]string{
		"RoleArn": roleARN, "RoleSessionName": "system-serviceaccount-agents-support-bot",
		"SourceIdentity": "alice@example.com", "DurationSeconds": "900", "Policy": sessionPolicy,
		"TransitiveTagKeys.member.1": "on-behalf-of",
	}
	for k, v := range want {
		if got := c.Params.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := c.Tags(); !reflect.DeepEqual(got, map[string]string{"namespace": "agents", "on-behalf-of": "alice@example.com"}) {
		t.Errorf("tags = %v", got)
	}
	if got := c.PolicyArns(); !reflect.DeepEqual(got, []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}) {
		t.Errorf("policy arns = %v", got)
	}
	if c.Caller.Arn != "arn:aws:iam::"+account+":user/stint" {
		t.Errorf("signed by %q, want stint's own credentials", c.Caller.Arn)
	}
	cred := res.Credential
	for _, k := range []string{"access_key_id", "secret_access_key", "session_token", "expiration"} {
		if cred[k] == "" {
			t.Errorf("credential lacks %s", k)
		}
	}
	if _, err := time.Parse(time.RFC3339, cred["expiration"]); err != nil {
		t.Errorf("expiration %q is not RFC 3339", cred["expiration"])
	}
	if len(res.Internal) != 0 {
		t.Errorf("an unrecallable credential left issuer data for its lease: %s", res.Internal)
	}
	if res.Audit["access_key_id"] != cred["access_key_id"] || res.Audit["session_name"] != "system-serviceaccount-agents-support-bot" ||
		res.Audit["role_arn"] == "" || res.Audit["expiration"] != cred["expiration"] {
		t.Errorf("audit details = %v", res.Audit)
	}
	if b, _ := json.Marshal(res.Audit); strings.Contains(string(b), cred["secret_access_key"]) || strings.Contains(string(b), cred["session_token"]) {
		t.Error("the audit details hold a secret")
	}
	// The credentials are real STS credentials: the SDK can use them.
	id := callerIdentity(t, e.sts, cred)
	if id != "arn:aws:sts::"+account+":assumed-role/orders-reader/system-serviceaccount-agents-support-bot" {
		t.Errorf("issued credentials are %q", id)
	}
}

func callerIdentity(t *testing.T, s *ststest.Server, cred core.Credential) string {
	t.Helper()
	c := sts.NewFromConfig(aws.Config{Region: "us-east-1", HTTPClient: s.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(cred["access_key_id"], cred["secret_access_key"], cred["session_token"])},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(s.Endpoint()) })
	out, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Arn)
}

func TestAssumeRole_LocalSTSSpeakingQueryXML_SourceIdentityIsThePrincipalWhenActingAlone(t *testing.T) {
	rc := assumeRoleConfig()
	rc.SessionTags = map[string]string{"sa": "{{.identity.service_account}}"}
	rc.TransitiveTagKeys = nil
	rc.SessionName = "{{.identity.service_account}}"
	e := newEnv(t, map[string]awssts.RoleConfig{"reader": rc})
	if _, err := e.is.Issue(context.Background(), request("reader", bot, nil, 30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	c := e.sts.Calls("AssumeRole")[0]
	if got := c.Params.Get("SourceIdentity"); got != "system-serviceaccount-agents-support-bot" {
		t.Errorf("SourceIdentity = %q", got)
	}
	if got := c.Params.Get("RoleSessionName"); got != "support-bot" {
		t.Errorf("RoleSessionName = %q", got)
	}
	if got := c.Params.Get("DurationSeconds"); got != "1800" {
		t.Errorf("DurationSeconds = %q", got)
	}
}

func TestAssumeRole_LocalSTSSpeakingQueryXML_DurationBounds(t *testing.T) {
	cases := []struct {
		name     string
		maxDur   time.Duration
		ttl      time.Duration
		wantSecs string
		wantKind core.Kind
		shorter  bool
	}{
		{"below STS minimum", time.Hour, 10 * time.Minute, "", core.KindInvalid, false},
		{"capped at the role's max", time.Hour, 3 * time.Hour, "3600", 0, true},
		{"within bounds", 2 * time.Hour, 90 * time.Minute, "5400", 0, false},
		{"role max in stint above the role's real max", 3 * time.Hour, 3 * time.Hour, "", core.KindInvalid, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := assumeRoleConfig()
			rc.MaxSessionDuration = c.maxDur
			e := newEnv(t, map[string]awssts.RoleConfig{"reader": rc})
			req := request("reader", bot, alice, c.ttl)
			res, err := e.is.Issue(context.Background(), req)
			if c.wantKind != 0 {
				if core.KindOf(err) != c.wantKind {
					t.Fatalf("err = %v (kind %d), want kind %d", err, core.KindOf(err), c.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.sts.Calls("AssumeRole")[0].Params.Get("DurationSeconds"); got != c.wantSecs {
				t.Errorf("DurationSeconds = %s, want %s", got, c.wantSecs)
			}
			if c.shorter != res.ExpiresAt.Before(req.ExpiresAt.Add(-time.Minute)) {
				t.Errorf("lease expiry %s vs requested %s", res.ExpiresAt, req.ExpiresAt)
			}
		})
	}
}

func TestAssumeRole_LocalSTSSpeakingQueryXML_STSRefusalsAreClear(t *testing.T) {
	rc := assumeRoleConfig()
	rc.RoleARN = "arn:aws:iam::" + account + ":role/not-trusted"
	e := newEnv(t, map[string]awssts.RoleConfig{"other": rc})
	_, err := e.is.Issue(context.Background(), request("other", bot, alice, 15*time.Minute))
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Kind != core.KindUnavailable || !strings.Contains(ce.Public, "AccessDenied") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), stintSK) {
		t.Fatal("error leaks stint's secret key")
	}
}

func TestAssumeRoleWithWebIdentity_LocalSTSSpeakingQueryXML_TokenVerifiesWithAWSAudience(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"web": {
		Kind: awssts.KindWebIdentity, RoleARN: roleARN, SessionTags: map[string]string{"namespace": "{{.identity.namespace}}"},
	}})
	res, err := e.is.Issue(context.Background(), request("web", bot, alice, 15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	calls := e.sts.Calls("AssumeRoleWithWebIdentity")
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	c := calls[0]
	if c.Header.Get("Authorization") != "" {
		t.Error("AssumeRoleWithWebIdentity was signed; stint must need no AWS credentials for it")
	}
	tok, err := jwt.ParseSigned(c.Params.Get("WebIdentityToken"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := tok.Claims(e.signer.key.Public(), &claims); err != nil {
		t.Fatal(err)
	}
	if claims["aud"] != "sts.amazonaws.com" || claims["iss"] != issuerURL || claims["sub"] != bot.Subject {
		t.Errorf("claims = %v", claims)
	}
	if claims["https://aws.amazon.com/source_identity"] != "alice@example.com" {
		t.Errorf("source identity claim = %v", claims["https://aws.amazon.com/source_identity"])
	}
	tags, _ := claims["https://aws.amazon.com/tags"].(map[string]any)
	if pt, _ := tags["principal_tags"].(map[string]any); fmt.Sprint(pt["namespace"]) != "[agents]" {
		t.Errorf("tags claim = %v", claims["https://aws.amazon.com/tags"])
	}
	exp, _ := claims["exp"].(float64)
	if d := time.Until(time.Unix(int64(exp), 0)); d > 6*time.Minute {
		t.Errorf("web identity token lives %s; it is only for the call", d)
	}
	if c.Params.Get("RoleSessionName") != "system-serviceaccount-agents-support-bot" {
		t.Errorf("RoleSessionName = %q", c.Params.Get("RoleSessionName"))
	}
	if id := callerIdentity(t, e.sts, res.Credential); !strings.Contains(id, ":assumed-role/orders-reader/") {
		t.Errorf("issued credentials are %q", id)
	}
}

func TestAssumeRoleWithWebIdentity_LocalSTSSpeakingQueryXML_WrongAudienceRefused(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"web": {Kind: awssts.KindWebIdentity, RoleARN: roleARN, Audience: "something-else"}})
	_, err := e.is.Issue(context.Background(), request("web", bot, nil, 15*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") {
		t.Fatalf("err = %v", err)
	}
}

func TestCredentialProcessOutput_AcceptedBySDKProcessCreds(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"reader": assumeRoleConfig()})
	res, err := e.is.Issue(context.Background(), request("reader", bot, alice, 15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	out, err := awssts.CredentialProcessJSON(res.Credential)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "out.json")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	p := processcreds.NewProvider("cat " + file)
	got, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("processcreds refused the output: %v\n%s", err, out)
	}
	if got.AccessKeyID != res.Credential["access_key_id"] || got.SecretAccessKey != res.Credential["secret_access_key"] ||
		got.SessionToken != res.Credential["session_token"] || !got.CanExpire {
		t.Fatalf("processcreds read %+v", got)
	}
	if want, _ := time.Parse(time.RFC3339, res.Credential["expiration"]); !got.Expires.Equal(want) {
		t.Errorf("expires %s, want %s", got.Expires, want)
	}
	// And the SDK, configured with that credential process, reaches STS as the assumed role.
	c := sts.NewFromConfig(aws.Config{Region: "us-east-1", HTTPClient: e.sts.Client(), Credentials: aws.NewCredentialsCache(p)},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(e.sts.Endpoint()) })
	id, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(id.Arn), "assumed-role/orders-reader/") {
		t.Errorf("caller is %s", aws.ToString(id.Arn))
	}
}

func TestDenyPolicy_PutRolePolicyOnLocalIAM(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"reader": assumeRoleConfig()})
	cutoff := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	err := awssts.PutDenyPolicy(context.Background(), roleARN, cutoff, awssts.DenyOptions{
		Endpoint: e.sts.Endpoint(), HTTPClient: e.sts.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(stintAKID, stintSK, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := e.sts.RolePolicy("orders-reader", awssts.DenyPolicyName)
	if !ok {
		t.Fatal("no policy put")
	}
	var p struct {
		Statement []struct {
			Effect    string
			Action    string
			Resource  string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	s := p.Statement[0]
	if s.Effect != "Deny" || s.Action != "*" || s.Resource != "*" || s.Condition["DateLessThan"]["aws:TokenIssueTime"] != "2026-05-01T12:00:00Z" {
		t.Errorf("policy = %s", doc)
	}
	// Signed with wrong credentials, IAM refuses.
	err = awssts.PutDenyPolicy(context.Background(), roleARN, cutoff, awssts.DenyOptions{
		Endpoint: e.sts.Endpoint(), HTTPClient: e.sts.Client(),
		Credentials: credentials.NewStaticCredentialsProvider(stintAKID, "wrong", ""),
	})
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("err = %v", err)
	}
}

func TestAssumeRole_MissingAttributeInTemplateIsInvalid(t *testing.T) {
	e := newEnv(t, map[string]awssts.RoleConfig{"reader": assumeRoleConfig()})
	_, err := e.is.Issue(context.Background(), request("reader", bot, nil, 15*time.Minute))
	if core.KindOf(err) != core.KindInvalid || !strings.Contains(err.Error(), "on-behalf-of") {
		t.Fatalf("err = %v", err)
	}
	if n := e.sts.Requests(); n != 0 {
		t.Fatalf("STS was called %d times for a request stint refused", n)
	}
}

func TestNew_RefusesBadRoles(t *testing.T) {
	good := assumeRoleConfig()
	cases := map[string]func(r *awssts.RoleConfig){
		"unknown kind":         func(r *awssts.RoleConfig) { r.Kind = "federation" },
		"not a role ARN":       func(r *awssts.RoleConfig) { r.RoleARN = "arn:aws:iam::1:user/x" },
		"policy not JSON":      func(r *awssts.RoleConfig) { r.Policy = "{" },
		"policy too large":     func(r *awssts.RoleConfig) { r.Policy = `{"a":"` + strings.Repeat("x", 3000) + `"}` },
		"bad policy ARN":       func(r *awssts.RoleConfig) { r.PolicyARNs = []string{"ReadOnly"} },
		"max over 12h":         func(r *awssts.RoleConfig) { r.MaxSessionDuration = 13 * time.Hour },
		"aws: tag key":         func(r *awssts.RoleConfig) { r.SessionTags = map[string]string{"aws:x": "y"} },
		"transitive not a tag": func(r *awssts.RoleConfig) { r.TransitiveTagKeys = []string{"nope"} },
		"bad template":         func(r *awssts.RoleConfig) { r.SessionName = "{{" },
		"audience on assume":   func(r *awssts.RoleConfig) { r.Audience = "x" },
		"default ttl short":    func(r *awssts.RoleConfig) { r.DefaultTTL = time.Minute },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			r := good
			mod(&r)
			_, err := awssts.New(context.Background(), awssts.Config{Name: "aws", Roles: map[string]awssts.RoleConfig{"r": r},
				Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	cases := map[string]string{
		"system:serviceaccount:agents:support-bot": "system-serviceaccount-agents-support-bot",
		"alice@example.com":                        "alice@example.com",
		"x":                                        "stint-x",
		"repo:org/very-long/" + strings.Repeat("a", 80): strings.Repeat("a", 64),
		"ünïcode name": "--n--code-name",
	}
	for in, want := range cases {
		if got := awssts.SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}
