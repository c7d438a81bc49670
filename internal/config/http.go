package config

import (
	"fmt"
	"net/textproto"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"
)

// HTTP holds the fields of an http target: an upstream API that stint
// calls on the workload's behalf through /proxy/{target}/…, adding the
// real credential on the way out. It is inlined in Target, so its keys sit
// beside name and type.
type HTTP struct {
	// URL is the upstream base URL; the only host requests are sent to
	// (https; plain http only on loopback).
	URL string `yaml:"url"`
	// Auth says how the upstream credential is sent.
	Auth HTTPAuth `yaml:"auth"`
	// Credential is the kind of upstream credential: static (default; put
	// in with `stint target set-key`), oauth2 (client credentials) or jwt
	// (a stint-minted token naming the principal).
	Credential string `yaml:"credential"`
	// OAuth2 configures the client-credentials grant (credential: oauth2).
	OAuth2 OAuth2 `yaml:"oauth2"`
	// Audience is the aud of the stint-minted JWT (credential: jwt).
	Audience string `yaml:"audience"`
	// Limits bound request rate and concurrency per principal and for the
	// whole upstream.
	Limits HTTPLimits `yaml:"limits"`
	// BodyMaxBytes is the largest JSON request body policy sees as
	// request.body; larger bodies stream through without it (default 1 MiB).
	BodyMaxBytes int64 `yaml:"body_max_bytes"`
	// PolicyHeaders are request headers policy sees as request.headers
	// (lower-cased names).
	PolicyHeaders []string `yaml:"policy_headers"`
	// StripHeaders are request headers never forwarded upstream (identity
	// headers), besides Authorization, hop-by-hop and forwarding headers.
	StripHeaders []string `yaml:"strip_headers"`
	// AllowCookies forwards Cookie and passes Set-Cookie back (default false).
	AllowCookies bool `yaml:"allow_cookies"`
	// StripResponseHeaders are upstream response headers never passed back
	// (default: Set-Cookie unless allow_cookies).
	StripResponseHeaders []string `yaml:"strip_response_headers"`
	// Timeout bounds one proxied request, streaming included (default 5m).
	Timeout Duration `yaml:"timeout"`
}

// HTTPAuth is how the upstream credential is sent: Header carries Format
// with {{.Key}} replaced by the credential.
type HTTPAuth struct {
	Header string `yaml:"header"`
	Format string `yaml:"format"`
}

// OAuth2 is a client-credentials grant (RFC 6749 §4.4); the secret is
// given by reference.
type OAuth2 struct {
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	ClientSecretEnv  string   `yaml:"client_secret_env"`
	Scopes           []string `yaml:"scopes"`
}

// HTTPLimits are the limits of one http target.
type HTTPLimits struct {
	PerPrincipal Limit `yaml:"per_principal"`
	PerUpstream  Limit `yaml:"per_upstream"`
}

// Limit is a token bucket plus a concurrency cap; zero means unlimited.
type Limit struct {
	RatePerSecond float64 `yaml:"rate_per_second"`
	// Burst defaults to the rate rounded up (at least 1).
	Burst         int `yaml:"burst"`
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Defaults of http targets.
const (
	DefaultHTTPBodyMaxBytes = 1 << 20
	DefaultHTTPTimeout      = 5 * time.Minute
	DefaultHTTPAuthHeader   = "Authorization"
	// KeyPlaceholder is replaced by the credential in auth.format.
	KeyPlaceholder = "{{.Key}}"
)

// setHTTPDefaults fills an http target's unset fields.
func setHTTPDefaults(t *Target) {
	if t.Type != "http" {
		return
	}
	h := &t.HTTP
	if h.Auth.Header == "" {
		h.Auth.Header = DefaultHTTPAuthHeader
	}
	if h.Auth.Format == "" {
		h.Auth.Format = KeyPlaceholder
		if strings.EqualFold(h.Auth.Header, "Authorization") {
			h.Auth.Format = "Bearer " + KeyPlaceholder
		}
	}
	if h.Credential == "" {
		h.Credential = "static"
	}
	if h.BodyMaxBytes == 0 {
		h.BodyMaxBytes = DefaultHTTPBodyMaxBytes
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(DefaultHTTPTimeout)
	}
	if h.StripResponseHeaders == nil && !h.AllowCookies {
		h.StripResponseHeaders = []string{"Set-Cookie"}
	}
	for _, l := range []*Limit{&h.Limits.PerPrincipal, &h.Limits.PerUpstream} {
		if l.RatePerSecond > 0 && l.Burst == 0 {
			l.Burst = max(1, int(l.RatePerSecond+0.999999))
		}
	}
}

// neverForwarded are request headers an http target may not use as its
// auth header or show to policy: they carry the agent's own secrets or
// steer the connection.
var neverForwarded = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Host": true,
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Content-Length": true,
}

// validateHTTP checks the http fields of targets[i] and the http fields of
// its roles; for other types it reports any http field that is set.
func (c *Config) validateHTTP(path string, t Target, add func(string, string, ...any)) {
	if t.Type != "http" {
		v := reflect.ValueOf(t.HTTP)
		for i := 0; i < v.NumField(); i++ {
			if !v.Field(i).IsZero() {
				tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
				add(path+"."+tag, "not used by a %s target", t.Type)
			}
		}
		for _, name := range sortedKeys(t.Roles) {
			if r := t.Roles[name]; len(r.Methods) > 0 || len(r.Paths) > 0 {
				add(path+".roles."+name, "methods and paths are for http targets")
			}
		}
		return
	}
	h := t.HTTP
	if u, err := url.Parse(h.URL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
		add(path+".url", "want an https URL (plain http only on loopback), got %q", redactURL(h.URL))
	} else if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		add(path+".url", "must not carry user info, a query or a fragment")
	}
	if !validHeaderName(h.Auth.Header) {
		add(path+".auth.header", "want a header name, got %q", h.Auth.Header)
	} else if canon := textproto.CanonicalMIMEHeaderKey(h.Auth.Header); neverForwarded[canon] && canon != "Authorization" {
		add(path+".auth.header", "%s cannot carry the upstream credential", canon)
	}
	if strings.Count(h.Auth.Format, KeyPlaceholder) != 1 || strings.ContainsAny(h.Auth.Format, "\r\n") {
		add(path+".auth.format", "must contain %s exactly once and no line breaks", KeyPlaceholder)
	}
	o := h.OAuth2
	switch h.Credential {
	case "static", "jwt", "oauth2":
	default:
		add(path+".credential", "want static, oauth2 or jwt, got %q", h.Credential)
	}
	if h.Credential == "oauth2" {
		if u, err := url.Parse(o.TokenURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
			add(path+".oauth2.token_url", "want an https URL (plain http only on loopback)")
		}
		if o.ClientID == "" {
			add(path+".oauth2.client_id", "required")
		}
		if (o.ClientSecretFile == "") == (o.ClientSecretEnv == "") {
			add(path+".oauth2", "set exactly one of client_secret_file and client_secret_env")
		}
		checkFile(o.ClientSecretFile, path+".oauth2.client_secret_file", add)
		if o.ClientSecretEnv != "" && os.Getenv(o.ClientSecretEnv) == "" {
			add(path+".oauth2.client_secret_env", "environment variable %s is not set", o.ClientSecretEnv)
		}
	} else if !reflect.ValueOf(o).IsZero() {
		add(path+".oauth2", "only used with credential: oauth2")
	}
	if h.Credential == "jwt" && h.Audience == "" {
		add(path+".audience", "required with credential: jwt")
	} else if h.Credential != "jwt" && h.Audience != "" {
		add(path+".audience", "only used with credential: jwt")
	}
	for name, l := range map[string]Limit{"per_principal": h.Limits.PerPrincipal, "per_upstream": h.Limits.PerUpstream} {
		if l.RatePerSecond < 0 || l.Burst < 0 || l.MaxConcurrent < 0 {
			add(path+".limits."+name, "limits must not be negative")
		}
	}
	if h.BodyMaxBytes < 0 || h.BodyMaxBytes > 64<<20 {
		add(path+".body_max_bytes", "want between 0 and 67108864")
	}
	for j, name := range h.PolicyHeaders {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if !validHeaderName(name) || neverForwarded[canon] || strings.EqualFold(name, h.Auth.Header) {
			add(fmt.Sprintf("%s.policy_headers[%d]", path, j), "%q cannot be shown to policy", name)
		}
	}
	for field, names := range map[string][]string{"strip_headers": h.StripHeaders, "strip_response_headers": h.StripResponseHeaders} {
		for j, name := range names {
			if !validHeaderName(name) {
				add(fmt.Sprintf("%s.%s[%d]", path, field, j), "want a header name, got %q", name)
			}
		}
	}
	if h.Timeout < 0 {
		add(path+".timeout", "must not be negative")
	}
	for _, name := range sortedKeys(t.Roles) {
		r, rp := t.Roles[name], path+".roles."+name
		if len(r.Methods) == 0 {
			add(rp+".methods", "at least one method (or *) is required for an http role")
		}
		for j, m := range r.Methods {
			if m != "*" && (!validHeaderName(m) || strings.ToUpper(m) != m) {
				add(fmt.Sprintf("%s.methods[%d]", rp, j), "want an upper-case method such as POST, or *")
			}
		}
		if len(r.Paths) == 0 {
			add(rp+".paths", "at least one path is required for an http role")
		}
		for j, p := range r.Paths {
			if msg := checkPathPattern(p); msg != "" {
				add(fmt.Sprintf("%s.paths[%d]", rp, j), "%s", msg)
			}
		}
	}
}

// checkPathPattern accepts "/exact/path" and "/prefix/*"; the proxy's
// matcher gives the same patterns their meaning.
func checkPathPattern(p string) string {
	base := strings.TrimSuffix(p, "*")
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q must start with /", p)
	case strings.Contains(base, "*"):
		return fmt.Sprintf("%q: * is only allowed as the last segment (/prefix/*)", p)
	case base != p && !strings.HasSuffix(base, "/"):
		return fmt.Sprintf("%q: a prefix pattern ends in /*", p)
	case strings.ContainsAny(p, "?#%\\ \t\r\n"):
		return fmt.Sprintf("%q: no query, fragment, escapes or spaces", p)
	case strings.Contains(p, "//"):
		return fmt.Sprintf("%q: no empty segments", p)
	}
	for _, seg := range strings.Split(base, "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("%q: no . or .. segments", p)
		}
	}
	return ""
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
