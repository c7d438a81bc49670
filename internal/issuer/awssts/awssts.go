// Package awssts is the issuer for targets of type aws-sts: temporary AWS
// credentials from STS. An assume_role role calls sts:AssumeRole with
// stint's own AWS credentials (the SDK's default chain); a web_identity
// role calls sts:AssumeRoleWithWebIdentity with a stint-signed JWT, so
// stint needs no AWS credentials at all. Either way the session name, the
// source identity and the session tags say in CloudTrail who acted and for
// whom. STS credentials cannot be recalled: the lease records and expires
// them, and Revoke only records (see DenyPolicy for the one lever AWS offers).
package awssts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	jwtissuer "github.com/stint-dev/stint/internal/issuer/jwt"
)

// Role kinds.
const (
	KindAssumeRole  = "assume_role"
	KindWebIdentity = "web_identity"
)

// Defaults and AWS's own limits.
const (
	// DefaultAudience is the aud AWS expects of a web identity token
	// (the client ID registered with the IAM OIDC provider).
	DefaultAudience = "sts.amazonaws.com"
	// MinTTL is the shortest session STS grants.
	MinTTL = 15 * time.Minute
	// DefaultMaxSessionDuration is a role's MaxSessionDuration unless raised in IAM.
	DefaultMaxSessionDuration = time.Hour
	// MaxSessionDuration is the most IAM allows any role.
	MaxSessionDuration = 12 * time.Hour
	// webTokenTTL is how long the JWT handed to STS lives: only for the call.
	webTokenTTL    = 5 * time.Minute
	maxPolicyBytes = 2048
	maxTags        = 50
)

// Claim names AWS reads from a web identity token.
const (
	claimSourceIdentity = "https://aws.amazon.com/source_identity"
	claimTags           = "https://aws.amazon.com/tags"
)

// RoleConfig is one aws-sts role.
type RoleConfig struct {
	// Kind is assume_role or web_identity.
	Kind string
	// RoleARN is the IAM role to assume.
	RoleARN string
	// Policy is an inline session policy (JSON) that narrows the role.
	Policy string
	// PolicyARNs are managed policies that narrow the role.
	PolicyARNs []string
	// SessionTags are tag key → text/template over {identity, human}.
	SessionTags map[string]string
	// TransitiveTagKeys are session tags that survive role chaining.
	TransitiveTagKeys []string
	// SessionName is a text/template for RoleSessionName; default the
	// principal's subject. The result is sanitised to [\w+=,.@-]{2,64}.
	SessionName string
	// ExternalID is passed to AssumeRole when the trust policy wants one.
	ExternalID string
	// MaxSessionDuration is the role's MaxSessionDuration in IAM (default 1h).
	MaxSessionDuration time.Duration
	// Audience is the aud of the web identity token (default sts.amazonaws.com).
	Audience string
	// DefaultTTL is the role's default lease TTL.
	DefaultTTL time.Duration
}

// Config configures one aws-sts target.
type Config struct {
	Name string
	// Region is the STS region (default us-east-1).
	Region string
	// Endpoint overrides the STS URL (a local STS in tests, a VPC endpoint).
	Endpoint string
	Roles    map[string]RoleConfig
	// IssuerURL and Signer mint web identity tokens (stint's own keys).
	IssuerURL string
	Signer    jwtissuer.Signer
	// Credentials are stint's AWS credentials for assume_role; nil loads
	// the SDK's default chain (only when an assume_role role exists).
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client
	Now         func() time.Time
}

// Issuer mints STS sessions for one aws-sts target.
type Issuer struct {
	cfg    Config
	roles  map[string]role
	signed *sts.Client // assume_role: signed with stint's credentials
	anon   *sts.Client // web_identity: the token is the credential
}

type role struct {
	RoleConfig
	session *template.Template
	tags    map[string]*template.Template
}

var (
	roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	policyARN      = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$`)
)

// New checks the roles, parses their templates and builds the STS clients.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	needCreds, needSigner := false, false
	for name, rc := range cfg.Roles {
		r, err := parseRole(rc)
		if err != nil {
			return nil, fmt.Errorf("aws-sts %s: role %s: %w", cfg.Name, name, err)
		}
		needCreds = needCreds || r.Kind == KindAssumeRole
		needSigner = needSigner || r.Kind == KindWebIdentity
		is.roles[name] = r
	}
	if needSigner && (cfg.Signer == nil || cfg.IssuerURL == "") {
		return nil, fmt.Errorf("aws-sts %s: web_identity roles need stint's signer and issuer URL", cfg.Name)
	}
	opts := func(o *sts.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	}
	base := aws.Config{Region: cfg.Region, HTTPClient: cfg.HTTPClient, RetryMaxAttempts: 3}
	anon := base
	anon.Credentials = aws.AnonymousCredentials{}
	is.anon = sts.NewFromConfig(anon, opts)
	if needCreds {
		creds := cfg.Credentials
		if creds == nil {
			loaded, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region))
			if err != nil {
				return nil, fmt.Errorf("aws-sts %s: load AWS config: %w", cfg.Name, err)
			}
			creds = loaded.Credentials
		}
		signed := base
		signed.Credentials = aws.NewCredentialsCache(creds)
		is.signed = sts.NewFromConfig(signed, opts)
	}
	return is, nil
}

func parseRole(rc RoleConfig) (role, error) {
	r := role{RoleConfig: rc, tags: map[string]*template.Template{}}
	switch rc.Kind {
	case KindAssumeRole, KindWebIdentity:
	default:
		return r, fmt.Errorf("kind %q: want assume_role or web_identity", rc.Kind)
	}
	if !roleARNPattern.MatchString(rc.RoleARN) {
		return r, fmt.Errorf("role_arn %q is not an IAM role ARN", rc.RoleARN)
	}
	if rc.Policy != "" {
		if err := CheckPolicy(rc.Policy); err != nil {
			return r, err
		}
	}
	for _, a := range rc.PolicyARNs {
		if !policyARN.MatchString(a) {
			return r, fmt.Errorf("policy_arns: %q is not an IAM policy ARN", a)
		}
	}
	if len(rc.PolicyARNs) > 10 {
		return r, fmt.Errorf("policy_arns: at most 10")
	}
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = DefaultMaxSessionDuration
	}
	if r.MaxSessionDuration < MinTTL || r.MaxSessionDuration > MaxSessionDuration {
		return r, fmt.Errorf("max_session_duration %s: want between 15m and 12h", r.MaxSessionDuration)
	}
	if r.DefaultTTL > 0 && (r.DefaultTTL < MinTTL || r.DefaultTTL > r.MaxSessionDuration) {
		return r, fmt.Errorf("default_ttl %s: want between 15m and max_session_duration %s", r.DefaultTTL, r.MaxSessionDuration)
	}
	if rc.Kind == KindWebIdentity {
		if r.Audience == "" {
			r.Audience = DefaultAudience
		}
		if rc.ExternalID != "" {
			return r, fmt.Errorf("external_id applies to assume_role only")
		}
	} else if rc.Audience != "" {
		return r, fmt.Errorf("audience applies to web_identity only")
	}
	text := rc.SessionName
	if text == "" {
		text = "{{.identity.subject}}"
	}
	var err error
	if r.session, err = template.New("session_name").Option("missingkey=error").Parse(text); err != nil {
		return r, fmt.Errorf("session_name: %w", err)
	}
	if len(rc.SessionTags) > maxTags {
		return r, fmt.Errorf("session_tags: at most %d", maxTags)
	}
	for k, text := range rc.SessionTags {
		if !TagText(k, 1, 128) || strings.HasPrefix(strings.ToLower(k), "aws:") {
			return r, fmt.Errorf("session_tags: key %q is not a valid tag key", k)
		}
		t, err := template.New(k).Option("missingkey=error").Parse(text)
		if err != nil {
			return r, fmt.Errorf("session_tags %q: %w", k, err)
		}
		r.tags[k] = t
	}
	for _, k := range rc.TransitiveTagKeys {
		if _, ok := rc.SessionTags[k]; !ok {
			return r, fmt.Errorf("transitive_tag_keys: %q is not a session tag", k)
		}
	}
	return r, nil
}

// CheckPolicy checks an inline session policy: JSON, an object, and within
// STS's size limit once whitespace is removed.
func CheckPolicy(p string) error {
	var doc map[string]any
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return fmt.Errorf("policy is not a JSON object: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(p)); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if buf.Len() > maxPolicyBytes {
		return fmt.Errorf("policy is %d bytes compacted, STS allows %d", buf.Len(), maxPolicyBytes)
	}
	return nil
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

// RoleARN returns the IAM role a stint role assumes ("" if unknown).
func (i *Issuer) RoleARN(roleName string) string { return i.roles[roleName].RoleARN }

// session is what Issue sends, rendered from the role and the principals.
type session struct {
	name, sourceIdentity string
	tags                 map[string]string
	duration             time.Duration
}

// plan renders the session name, source identity and tags, and fits the
// duration into STS's bounds.
func (i *Issuer) plan(r role, req issuer.Request) (session, error) {
	ttl := req.ExpiresAt.Sub(req.IssuedAt).Truncate(time.Second)
	if ttl < MinTTL {
		return session{}, core.Invalid("aws-sts %s/%s: ttl %s is below STS's minimum of 15m", i.cfg.Name, req.Role, ttl)
	}
	ttl = min(ttl, r.MaxSessionDuration)
	data := map[string]any{"identity": req.Principal.Map(), "human": req.Human.Map()}
	var buf bytes.Buffer
	if err := r.session.Execute(&buf, data); err != nil {
		return session{}, core.Invalid("aws-sts %s/%s: session_name template: %v", i.cfg.Name, req.Role, err)
	}
	s := session{name: SanitizeName(buf.String()), duration: ttl, tags: map[string]string{}}
	who := req.Principal.Subject
	if req.Human != nil {
		who = req.Human.Subject
	}
	s.sourceIdentity = SanitizeName(who)
	if strings.HasPrefix(strings.ToLower(s.sourceIdentity), "aws:") {
		s.sourceIdentity = "stint-" + s.sourceIdentity[4:]
	}
	for k, t := range r.tags {
		buf.Reset()
		if err := t.Execute(&buf, data); err != nil {
			return session{}, core.Invalid("aws-sts %s/%s: session tag %q: %v", i.cfg.Name, req.Role, k, err)
		}
		s.tags[k] = SanitizeTagValue(buf.String())
	}
	return s, nil
}

// Issue calls STS and returns the session's credentials.
func (i *Issuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := i.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("unknown role %q on target %s", req.Role, i.cfg.Name)
	}
	s, err := i.plan(r, req)
	if err != nil {
		return issuer.Result{}, err
	}
	var creds *types.Credentials
	var assumed string
	switch r.Kind {
	case KindAssumeRole:
		in := &sts.AssumeRoleInput{
			RoleArn: aws.String(r.RoleARN), RoleSessionName: aws.String(s.name),
			DurationSeconds: aws.Int32(int32(s.duration / time.Second)), SourceIdentity: aws.String(s.sourceIdentity),
			PolicyArns: policyDescriptors(r.PolicyARNs), TransitiveTagKeys: r.TransitiveTagKeys,
		}
		if r.Policy != "" {
			in.Policy = aws.String(r.Policy)
		}
		if r.ExternalID != "" {
			in.ExternalId = aws.String(r.ExternalID)
		}
		for _, k := range sortedKeys(s.tags) {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(s.tags[k])})
		}
		out, err := i.signed.AssumeRole(ctx, in)
		if err != nil {
			return issuer.Result{}, i.stsError("AssumeRole", err)
		}
		creds = out.Credentials
		if out.AssumedRoleUser != nil {
			assumed = aws.ToString(out.AssumedRoleUser.Arn)
		}
	case KindWebIdentity:
		tok, err := i.webIdentityToken(r, req, s)
		if err != nil {
			return issuer.Result{}, err
		}
		in := &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(r.RoleARN), RoleSessionName: aws.String(s.name), WebIdentityToken: aws.String(tok),
			DurationSeconds: aws.Int32(int32(s.duration / time.Second)), PolicyArns: policyDescriptors(r.PolicyARNs),
		}
		if r.Policy != "" {
			in.Policy = aws.String(r.Policy)
		}
		out, err := i.anon.AssumeRoleWithWebIdentity(ctx, in)
		if err != nil {
			return issuer.Result{}, i.stsError("AssumeRoleWithWebIdentity", err)
		}
		creds = out.Credentials
		if out.AssumedRoleUser != nil {
			assumed = aws.ToString(out.AssumedRoleUser.Arn)
		}
	}
	if creds == nil || creds.AccessKeyId == nil || creds.Expiration == nil {
		return issuer.Result{}, fmt.Errorf("aws-sts %s: STS returned no credentials", i.cfg.Name)
	}
	exp := creds.Expiration.UTC()
	// STS credentials cannot be recalled, so Revoke needs nothing and the
	// lease keeps no issuer data; what identifies the session in
	// CloudTrail (none of it secret) goes into the issue's audit event.
	describe := map[string]any{
		"access_key_id": aws.ToString(creds.AccessKeyId), "role_arn": r.RoleARN,
		"session_name": s.name, "expiration": exp.Format(time.RFC3339),
	}
	if s.sourceIdentity != "" {
		describe["source_identity"] = s.sourceIdentity
	}
	res := issuer.Result{
		Credential: core.Credential{
			"access_key_id": aws.ToString(creds.AccessKeyId), "secret_access_key": aws.ToString(creds.SecretAccessKey),
			"session_token": aws.ToString(creds.SessionToken), "expiration": exp.Format(time.RFC3339),
			"assumed_role_arn": assumed, "region": i.cfg.Region,
		},
		Audit:     describe,
		ExpiresAt: req.ExpiresAt,
	}
	if exp.Before(req.ExpiresAt) {
		res.ExpiresAt = exp
	}
	return res, nil
}

// webIdentityToken mints the JWT a web_identity role hands to STS: stint's
// issuer, the role's audience, the workload as sub, and the source
// identity and session tags in the claims AWS reads them from.
func (i *Issuer) webIdentityToken(r role, req issuer.Request, s session) (string, error) {
	now := i.cfg.Now()
	sub := req.Principal
	sub.Actor = nil
	extra := map[string]any{claimSourceIdentity: s.sourceIdentity}
	if len(s.tags) > 0 {
		pt := map[string][]string{}
		for k, v := range s.tags {
			pt[k] = []string{v}
		}
		t := map[string]any{"principal_tags": pt}
		if len(r.TransitiveTagKeys) > 0 {
			t["transitive_tag_keys"] = r.TransitiveTagKeys
		}
		extra[claimTags] = t
	}
	return jwtissuer.Mint(i.cfg.Signer, jwtissuer.Token{
		Issuer: i.cfg.IssuerURL, Audience: r.Audience, Subject: sub, IssuedAt: now, Expiry: now.Add(webTokenTTL),
		ID: req.LeaseID, Extra: extra, Type: "JWT",
	})
}

// stsError keeps STS's error code (safe: AWS's words about stint's own
// request) and makes a refusal of stint's configuration a clear 4xx.
func (i *Issuer) stsError(op string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ValidationError", "MalformedPolicyDocument", "PackedPolicyTooLarge", "RegionDisabledException":
			return core.E(core.KindInvalid, "", fmt.Sprintf("aws-sts %s: STS %s refused the request: %s", i.cfg.Name, op, api.ErrorCode()), err)
		}
		return core.E(core.KindUnavailable, "", fmt.Sprintf("aws-sts %s: STS %s failed: %s", i.cfg.Name, op, api.ErrorCode()), err)
	}
	return fmt.Errorf("aws-sts %s: %s: %w", i.cfg.Name, op, err)
}

// Revoke records the revocation and succeeds: STS sessions cannot be
// recalled one by one, they expire at their expiration. DenyPolicy is how
// an operator cuts off every earlier session of a role.
func (i *Issuer) Revoke(context.Context, issuer.RevokeRequest) error { return nil }

// IssuesRemotely marks Issue as a round trip to STS (issuer.Remote).
func (i *Issuer) IssuesRemotely() {}

var _ issuer.Remote = (*Issuer)(nil)

func policyDescriptors(arns []string) []types.PolicyDescriptorType {
	var out []types.PolicyDescriptorType
	for _, a := range arns {
		out = append(out, types.PolicyDescriptorType{Arn: aws.String(a)})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SanitizeName fits s to what STS allows for RoleSessionName and
// SourceIdentity, [\w+=,.@-]{2,64}: other characters become '-', a long
// name keeps its end (the most specific part: a service account, a role),
// and a too-short one is padded.
func SanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0) {
			b[i] = '-'
		}
	}
	out := string(b)
	if len(out) > 64 {
		out = out[len(out)-64:]
	}
	if len(out) < 2 {
		out = "stint-" + out
	}
	return out
}

// SanitizeTagValue fits s to AWS's tag value rules: allowed characters
// only (others become '_'), at most 256 characters.
func SanitizeTagValue(s string) string {
	if TagText(s, 0, 256) {
		return s
	}
	var b strings.Builder
	n := 0
	for _, c := range s {
		if n == 256 {
			break
		}
		if TagText(string(c), 0, 256) {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
		n++
	}
	return b.String()
}

var _ issuer.Issuer = (*Issuer)(nil)

// TagText reports whether s is a valid AWS tag key or value: between min
// and max characters, each a letter, space, number or one of _.:/=+-@.
// A plain loop, because the equivalent \p{…}{1,256} regexp costs ~15 MB
// and ~15 ms to compile at every start of every CLI command.
func TagText(s string, min, max int) bool {
	n := 0
	for _, r := range s {
		n++
		if n > max {
			return false
		}
		if unicode.IsLetter(r) || unicode.Is(unicode.Z, r) || unicode.IsNumber(r) || strings.ContainsRune("_.:/=+-@", r) {
			continue
		}
		return false
	}
	return n >= min && utf8.ValidString(s)
}

// NeedsNoCleanup marks STS credentials as needing no cleanup
// (issuer.NoCleanup): they cannot be recalled and expire on their own, so
// a crash between AssumeRole and recording the lease leaves nothing to
// revoke — the caller never received them.
func (is *Issuer) NeedsNoCleanup() {}

var _ issuer.NoCleanup = (*Issuer)(nil)
