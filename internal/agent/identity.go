// Package agent is stint's client side: it finds the workload's identity
// on its platform, fetches credentials with it, injects them into a child
// process (`stint exec`) or writes them to files (`stint agent`), renews
// them while they are used and revokes them when the work ends.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// maxToken bounds an identity token read from a file, an environment
// variable or an endpoint: real ones are a few kilobytes.
const maxToken = 64 << 10

// Source names, as --identity takes them. They match the server's
// identity provider types where one exists.
const (
	SourceFile       = "file"
	SourceEnv        = "env"
	SourceKubernetes = "kubernetes"
	SourceGitHub     = "github-actions"
	SourceGitLab     = "gitlab-ci"
	SourceGCP        = "gcp"
	SourceAzure      = "azure"
	SourceSPIFFE     = "spiffe"
	SourceAWS        = "aws"
)

// Source finds the workload's identity token: the proof of who it is that
// its platform gives it. Token is called before every request that needs
// the identity, so sources re-read or re-fetch as their platform rotates
// the token (Cached keeps network sources from asking every time).
type Source interface {
	// Name is the source kind (one of the Source* constants).
	Name() string
	// Token returns a current token. Errors never contain the token.
	Token(ctx context.Context) (string, error)
}

// FileSource reads a token from a file on every call, because platforms
// (Kubernetes projected volumes) replace the file as the token rotates.
type FileSource struct {
	Path string
	// Kind is SourceKubernetes or SourceFile (what Name reports).
	Kind string
}

// Name reports the source kind.
func (s *FileSource) Name() string {
	if s.Kind == "" {
		return SourceFile
	}
	return s.Kind
}

// Token reads the file.
func (s *FileSource) Token(context.Context) (string, error) {
	return ReadTokenFile(s.Path)
}

// ReadTokenFile reads one token from path: trimmed, bounded, not empty.
func ReadTokenFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxToken+1))
	if err != nil {
		return "", fmt.Errorf("identity: read %s: %w", path, err)
	}
	return checkToken(path, string(b))
}

func checkToken(where, tok string) (string, error) {
	if len(tok) > maxToken {
		return "", fmt.Errorf("identity: %s: token larger than %d bytes", where, maxToken)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("identity: %s: token is empty", where)
	}
	return tok, nil
}

// EnvSource takes the token from an environment variable: a stint token
// in STINT_TOKEN, or a GitLab CI `id_tokens` variable.
type EnvSource struct {
	Var  string
	Kind string // SourceEnv or SourceGitLab
	// Getenv defaults to os.Getenv.
	Getenv func(string) string
}

// Name reports the source kind.
func (s *EnvSource) Name() string {
	if s.Kind == "" {
		return SourceEnv
	}
	return s.Kind
}

// Token reads the variable.
func (s *EnvSource) Token(context.Context) (string, error) {
	get := s.Getenv
	if get == nil {
		get = os.Getenv
	}
	return checkToken("$"+s.Var, get(s.Var))
}

// GitHubActions asks the Actions runtime for an OIDC token: a GET on
// ACTIONS_ID_TOKEN_REQUEST_URL with the audience appended, authorized by
// ACTIONS_ID_TOKEN_REQUEST_TOKEN, answering {"value": "<jwt>"}. The job
// needs `permissions: id-token: write` for the runtime to set them.
type GitHubActions struct {
	RequestURL   string
	RequestToken string
	Audience     string
	HTTPClient   *http.Client
}

// Name reports SourceGitHub.
func (s *GitHubActions) Name() string { return SourceGitHub }

// Token fetches a token for the audience.
func (s *GitHubActions) Token(ctx context.Context) (string, error) {
	u, err := url.Parse(s.RequestURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("identity: github-actions: ACTIONS_ID_TOKEN_REQUEST_URL is not an http(s) URL")
	}
	if s.Audience != "" {
		q := u.Query()
		q.Set("audience", s.Audience)
		u.RawQuery = q.Encode()
	}
	var out struct {
		Value string `json:"value"`
	}
	hdr := http.Header{"Authorization": {"bearer " + s.RequestToken}, "Accept": {"application/json"}}
	if err := getJSON(ctx, s.HTTPClient, SourceGitHub, u.String(), hdr, &out); err != nil {
		return "", err
	}
	return checkToken("github-actions response", out.Value)
}

// DefaultGCPMetadataHost is the GCE metadata server; GCE_METADATA_HOST
// overrides it as Google's own libraries allow.
const DefaultGCPMetadataHost = "metadata.google.internal"

// GCPMetadata asks the GCE/GKE/Cloud Run metadata server for a signed
// identity token of the default service account. The response body is the
// bare JWT.
type GCPMetadata struct {
	// Host is host[:port] of the metadata server (default DefaultGCPMetadataHost).
	Host       string
	Audience   string
	HTTPClient *http.Client
}

// Name reports SourceGCP.
func (s *GCPMetadata) Name() string { return SourceGCP }

// Token fetches an identity token with the full claim format (so the
// server sees the project and instance attributes).
func (s *GCPMetadata) Token(ctx context.Context) (string, error) {
	host := s.Host
	if host == "" {
		host = DefaultGCPMetadataHost
	}
	q := url.Values{"audience": {s.Audience}, "format": {"full"}}
	u := "http://" + host + "/computeMetadata/v1/instance/service-accounts/default/identity?" + q.Encode()
	b, err := get(ctx, s.HTTPClient, SourceGCP, u, http.Header{"Metadata-Flavor": {"Google"}})
	if err != nil {
		return "", err
	}
	return checkToken("gcp metadata response", string(b))
}

// DefaultAzureIMDS is the Azure Instance Metadata Service token endpoint.
const DefaultAzureIMDS = "http://169.254.169.254/metadata/identity/oauth2/token"

// AzureIMDS asks the Azure Instance Metadata Service for a managed
// identity token for Resource (the App ID URI the server's azure provider
// expects as audience).
type AzureIMDS struct {
	// Endpoint is the token URL (default DefaultAzureIMDS).
	Endpoint string
	Resource string
	// ClientID selects a user-assigned identity (empty: the system one).
	ClientID   string
	HTTPClient *http.Client
}

// Name reports SourceAzure.
func (s *AzureIMDS) Name() string { return SourceAzure }

// Token fetches a managed identity access token.
func (s *AzureIMDS) Token(ctx context.Context) (string, error) {
	ep := s.Endpoint
	if ep == "" {
		ep = DefaultAzureIMDS
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", errors.New("identity: azure: bad IMDS endpoint")
	}
	q := u.Query()
	q.Set("api-version", "2018-02-01")
	q.Set("resource", s.Resource)
	if s.ClientID != "" {
		q.Set("client_id", s.ClientID)
	}
	u.RawQuery = q.Encode()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := getJSON(ctx, s.HTTPClient, SourceAzure, u.String(), http.Header{"Metadata": {"true"}}, &out); err != nil {
		return "", err
	}
	return checkToken("azure imds response", out.AccessToken)
}

func get(ctx context.Context, hc *http.Client, who, u string, hdr http.Header) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", who, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL may carry nothing secret, but the error text of some
		// transports includes it; report the host only.
		return nil, fmt.Errorf("identity: %s: cannot reach %s: %w", who, req.URL.Host, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxToken+1))
	if err != nil {
		return nil, fmt.Errorf("identity: %s: read response: %w", who, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The body of an error is the platform's message, not a token.
		return nil, fmt.Errorf("identity: %s: %s answered %d: %s", who, req.URL.Host, resp.StatusCode, snippet(b))
	}
	return b, nil
}

func getJSON(ctx context.Context, hc *http.Client, who, u string, hdr http.Header, out any) error {
	b, err := get(ctx, hc, who, u, hdr)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("identity: %s: malformed response: %w", who, err)
	}
	return nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Cached remembers a source's token until shortly before it expires, so
// network sources (metadata servers, the Actions runtime) are not asked on
// every request. File and environment sources are cheap and need no cache.
type Cached struct {
	Source Source
	// Now defaults to time.Now.
	Now func() time.Time
	// MaxAge caps how long a token is reused (default 5m).
	MaxAge time.Duration

	mu  sync.Mutex
	tok string
	exp time.Time
}

// Name reports the wrapped source's name.
func (c *Cached) Name() string { return c.Source.Name() }

// Token returns the cached token or fetches a new one.
func (c *Cached) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if c.tok != "" && now().Before(c.exp) {
		return c.tok, nil
	}
	tok, err := c.Source.Token(ctx)
	if err != nil {
		return "", err
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	exp := now().Add(maxAge)
	if cl, err := PeekClaims(tok); err == nil && !cl.Expiry.IsZero() {
		// Stop reusing a minute before expiry (the server allows 60 s skew
		// the other way, so a token this old may be refused).
		if e := cl.Expiry.Add(-time.Minute); e.Before(exp) {
			exp = e
		}
	}
	c.tok, c.exp = tok, exp
	return tok, nil
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*EnvSource)(nil)
	_ Source = (*GitHubActions)(nil)
	_ Source = (*GCPMetadata)(nil)
	_ Source = (*AzureIMDS)(nil)
	_ Source = (*Cached)(nil)
)
