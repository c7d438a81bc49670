package config

import (
	"encoding/json"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AWSProvider holds the fields of an aws-iam identity provider.
type AWSProvider struct {
	// STSEndpoints are the only STS URLs a proof may name; default the
	// global endpoint plus the regional endpoint of each of Regions.
	STSEndpoints []string `yaml:"sts_endpoints"`
	// Regions add their regional STS endpoints to the default list.
	Regions []string `yaml:"regions"`
	// ServerID is the value the signed X-Stint-Server-ID header of a proof
	// must carry; default server.issuer_url.
	ServerID string `yaml:"server_id"`
	// Accounts and RoleARNs (path.Match patterns over the role or user
	// ARN) restrict who may authenticate at all; empty: anyone STS knows.
	Accounts []string `yaml:"accounts"`
	RoleARNs []string `yaml:"role_arns"`
	// MaxAge bounds how old a proof's signature may be (default and most 15m).
	MaxAge Duration `yaml:"max_age"`
}

// AWSTarget holds the fields of an aws-sts target.
type AWSTarget struct {
	// Region is the STS region (default us-east-1).
	Region string `yaml:"region"`
	// STSEndpoint overrides the STS URL (a VPC endpoint; a local STS in tests).
	STSEndpoint string `yaml:"sts_endpoint"`
}

// AWSRole holds the fields of an aws-sts role (Audience is shared with jwt
// roles: the aud of a web_identity token, default sts.amazonaws.com).
type AWSRole struct {
	// Kind is assume_role (stint's AWS credentials call sts:AssumeRole) or
	// web_identity (a stint-signed JWT, no AWS credentials in stint).
	Kind    string `yaml:"kind"`
	RoleARN string `yaml:"role_arn"`
	// Policy is an inline JSON session policy that narrows the role.
	Policy     string   `yaml:"policy"`
	PolicyARNs []string `yaml:"policy_arns"`
	// SessionTags are tag → text/template over {identity, human}.
	SessionTags       map[string]string `yaml:"session_tags"`
	TransitiveTagKeys []string          `yaml:"transitive_tag_keys"`
	// SessionName is a template for RoleSessionName (default the subject).
	SessionName string `yaml:"session_name"`
	ExternalID  string `yaml:"external_id"`
	// MaxSessionDuration is the role's MaxSessionDuration in IAM (default 1h).
	MaxSessionDuration Duration `yaml:"max_session_duration"`
}

var (
	awsAccount   = regexp.MustCompile(`^\d{12}$`)
	awsRegion    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)
	awsRoleARN   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	awsPolicyARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$`)
)

// checkSTSURL accepts https URLs, and http only on loopback (local test STS).
func checkSTSURL(s, p string, add func(string, string, ...any)) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.User != nil || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		add(p, "want an https URL without query (http only on loopback), got %q", s)
	}
}

// notSet reports every non-zero field of v, for types that do not use them.
func notSet(v any, p, typ, what string, add func(string, string, ...any)) {
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		tag, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
		if !rv.Field(i).IsZero() {
			add(p+"."+tag, "not used by a %s %s", typ, what)
		}
	}
}

// validateAWSProvider checks an identity provider's aws-iam fields.
func (c *Config) validateAWSProvider(p string, ip IdentityProvider, add func(string, string, ...any)) {
	if ip.Type != "aws-iam" {
		notSet(ip.AWSProvider, p, ip.Type, "provider", add)
		return
	}
	for k, set := range map[string]bool{"issuer": ip.Issuer != "", "jwks_file": ip.JWKSFile != "", "jwks_url": ip.JWKSURL != "",
		"claims": len(ip.Claims) > 0, "algorithms": len(ip.Algorithms) > 0, "subject_claim": ip.SubjectClaim != ""} {
		if set {
			add(p+"."+k, "not used by an aws-iam provider")
		}
	}
	for j, e := range ip.STSEndpoints {
		checkSTSURL(e, p+".sts_endpoints["+strconv.Itoa(j)+"]", add)
	}
	for j, r := range ip.Regions {
		if !awsRegion.MatchString(r) {
			add(p+".regions["+strconv.Itoa(j)+"]", "%q is not an AWS region name", r)
		}
	}
	for j, a := range ip.Accounts {
		if !awsAccount.MatchString(a) {
			add(p+".accounts["+strconv.Itoa(j)+"]", "want a 12-digit account ID, got %q", a)
		}
	}
	for j, r := range ip.RoleARNs {
		if _, err := path.Match(r, ""); err != nil || !strings.HasPrefix(r, "arn:") {
			add(p+".role_arns["+strconv.Itoa(j)+"]", "want an ARN or an ARN pattern, got %q", r)
		}
	}
	if d := ip.MaxAge.D(); d != 0 && (d < time.Minute || d > 15*time.Minute) {
		add(p+".max_age", "want between 1m and 15m (STS's own signature window)")
	}
	if strings.ContainsAny(ip.ServerID, "\r\n") {
		add(p+".server_id", "must be one line")
	}
}

// validateAWSTarget checks a target's aws-sts fields and its roles'.
func (c *Config) validateAWSTarget(p string, t Target, add func(string, string, ...any)) {
	if t.Type != "aws-sts" {
		notSet(t.AWSTarget, p, t.Type, "target", add)
		for _, name := range sortedKeys(t.Roles) {
			notSet(t.Roles[name].AWSRole, p+".roles."+name, t.Type, "target", add)
		}
		return
	}
	if t.Region != "" && !awsRegion.MatchString(t.Region) {
		add(p+".region", "%q is not an AWS region name", t.Region)
	}
	if t.STSEndpoint != "" {
		checkSTSURL(t.STSEndpoint, p+".sts_endpoint", add)
	}
	for _, name := range sortedKeys(t.Roles) {
		r, rp := t.Roles[name], p+".roles."+name
		switch r.Kind {
		case "assume_role":
			if r.Audience != "" {
				add(rp+".audience", "only web_identity roles have an audience")
			}
		case "web_identity":
			if r.ExternalID != "" {
				add(rp+".external_id", "only assume_role roles take an external_id")
			}
		case "":
			add(rp+".kind", "required: assume_role or web_identity")
		default:
			add(rp+".kind", "want assume_role or web_identity, got %q", r.Kind)
		}
		if !awsRoleARN.MatchString(r.RoleARN) {
			add(rp+".role_arn", "want an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got %q", r.RoleARN)
		}
		if r.Policy != "" {
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.Policy), &doc); err != nil {
				add(rp+".policy", "not a JSON policy document: %v", err)
			}
		}
		for j, a := range r.PolicyARNs {
			if !awsPolicyARN.MatchString(a) {
				add(rp+".policy_arns["+strconv.Itoa(j)+"]", "want an IAM policy ARN, got %q", a)
			}
		}
		for _, k := range sortedKeys(r.SessionTags) {
			if !awsTagKey(k) || strings.HasPrefix(strings.ToLower(k), "aws:") {
				add(rp+".session_tags", "%q is not a valid session tag key", k)
			}
		}
		for _, k := range r.TransitiveTagKeys {
			if _, ok := r.SessionTags[k]; !ok {
				add(rp+".transitive_tag_keys", "%q is not one of session_tags", k)
			}
		}
		maxDur := r.MaxSessionDuration.D()
		if maxDur == 0 {
			maxDur = time.Hour
		}
		if maxDur < 15*time.Minute || maxDur > 12*time.Hour {
			add(rp+".max_session_duration", "want between 15m and 12h")
		}
		if d := r.DefaultTTL.D(); d != 0 && (d < 15*time.Minute || d > maxDur) {
			add(rp+".default_ttl", "want between 15m (STS's minimum) and max_session_duration %s", maxDur)
		}
		for k, set := range map[string]bool{"scopes": len(r.Scopes) > 0, "claims": len(r.Claims) > 0, "creation": r.Creation != ""} {
			if set {
				add(rp+"."+k, "not used by an aws-sts role")
			}
		}
	}
}

// awsTagKey reports whether k is a valid AWS tag key: 1 to 128 letters,
// spaces, numbers or _.:/=+-@ (a loop: the \p{…} regexp is slow to compile).
func awsTagKey(k string) bool {
	n := 0
	for _, r := range k {
		n++
		if n > 128 || !(unicode.IsLetter(r) || unicode.Is(unicode.Z, r) || unicode.IsNumber(r) || strings.ContainsRune("_.:/=+-@", r)) {
			return false
		}
	}
	return n >= 1 && utf8.ValidString(k)
}
