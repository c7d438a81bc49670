package agent

import (
	"github.com/stint-dev/stint/internal/agent/awsproof"

	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Defaults for identity detection.
const (
	// DefaultKubeTokenFile is where a pod mounts its projected
	// service-account token for stint (audience "stint"); override with
	// STINT_KUBE_TOKEN_FILE or IdentityOptions.KubeTokenFile.
	DefaultKubeTokenFile = "/var/run/secrets/stint/token"
	// DefaultAudience is the audience stint's identity providers expect.
	DefaultAudience = "stint"
	// DefaultGitLabVar names the GitLab CI `id_tokens` variable.
	DefaultGitLabVar = "STINT_ID_TOKEN"
	// metadataTimeout bounds a metadata-server request: they answer in
	// milliseconds when present, and must not stall a CLI when absent.
	metadataTimeout = 2 * time.Second
)

// DetectOrder lists the sources auto-detection tries, in order. Cloud
// metadata servers are tried only when their environment variable hints
// at them (GCE_METADATA_HOST, STINT_AZURE_IMDS_ENDPOINT): probing a
// link-local address elsewhere would stall every command.
// The AWS source is tried only when the aws-iam provider's server id is
// given ($STINT_AWS_SERVER_ID), since signing needs it.
var DetectOrder = []string{SourceFile, SourceEnv, SourceKubernetes, SourceGitHub, SourceGitLab, SourceSPIFFE, SourceGCP, SourceAzure, SourceAWS}

// IdentityOptions configure how the workload's identity is found.
type IdentityOptions struct {
	// Identity forces one source ("" or "auto": detect).
	Identity string
	// TokenFile is an explicit token file (kind "file"); default
	// $STINT_IDENTITY_TOKEN_FILE.
	TokenFile string
	// KubeTokenFile is the projected token path (default
	// $STINT_KUBE_TOKEN_FILE, else DefaultKubeTokenFile).
	KubeTokenFile string
	// Audience asked of sources that mint per audience (default
	// $STINT_IDENTITY_AUDIENCE, else DefaultAudience).
	Audience string
	// GitLabVar names the variable holding GitLab's id_token (default DefaultGitLabVar).
	GitLabVar string
	// SPIFFEAddr is the Workload API address (default $SPIFFE_ENDPOINT_SOCKET).
	SPIFFEAddr string
	// GCPHost is the metadata host (default $GCE_METADATA_HOST, else DefaultGCPMetadataHost).
	GCPHost string
	// AzureEndpoint is the IMDS token URL (default $STINT_AZURE_IMDS_ENDPOINT, else DefaultAzureIMDS).
	AzureEndpoint string
	// AzureClientID selects a user-assigned managed identity.
	AzureClientID string
	// AWSServerID is the aws-iam provider's server_id (default
	// $STINT_AWS_SERVER_ID); AWSRegion picks the regional STS endpoint
	// (default $AWS_REGION, else the global one); AWSEndpoint overrides the
	// STS URL (default $STINT_AWS_STS_ENDPOINT).
	AWSServerID, AWSRegion, AWSEndpoint string
	// Getenv defaults to os.Getenv.
	Getenv func(string) string
	// HTTPClient is used for GitHub; metadata servers get a copy with a
	// short timeout. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
}

func (o IdentityOptions) env(name string) string {
	if o.Getenv != nil {
		return o.Getenv(name)
	}
	return os.Getenv(name)
}

func (o IdentityOptions) or(v, envName, def string) string {
	if v != "" {
		return v
	}
	if e := o.env(envName); e != "" {
		return e
	}
	return def
}

func (o IdentityOptions) httpClient(timeout time.Duration) *http.Client {
	hc := o.HTTPClient
	if hc == nil {
		return &http.Client{Timeout: timeout}
	}
	c := *hc
	if c.Timeout == 0 || c.Timeout > timeout {
		c.Timeout = timeout
	}
	return &c
}

// build returns the named source, or nil and a reason when it does not
// apply here. forced is true when the user named it: then a source needing
// no hint (a metadata server) is built with its default endpoint.
func (o IdentityOptions) build(name string, forced bool) (Source, string) {
	aud := o.or(o.Audience, "STINT_IDENTITY_AUDIENCE", DefaultAudience)
	switch name {
	case SourceFile:
		p := o.or(o.TokenFile, "STINT_IDENTITY_TOKEN_FILE", "")
		if p == "" {
			return nil, "no --identity-token-file or $STINT_IDENTITY_TOKEN_FILE"
		}
		return &FileSource{Path: p, Kind: SourceFile}, ""
	case SourceEnv:
		if o.env("STINT_TOKEN") == "" {
			return nil, "$STINT_TOKEN is not set"
		}
		return &EnvSource{Var: "STINT_TOKEN", Kind: SourceEnv, Getenv: o.Getenv}, ""
	case SourceKubernetes:
		p := o.or(o.KubeTokenFile, "STINT_KUBE_TOKEN_FILE", DefaultKubeTokenFile)
		if _, err := os.Stat(p); err != nil && !forced {
			return nil, fmt.Sprintf("no projected token at %s", p)
		}
		return &FileSource{Path: p, Kind: SourceKubernetes}, ""
	case SourceGitHub:
		u, t := o.env("ACTIONS_ID_TOKEN_REQUEST_URL"), o.env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
		if u == "" || t == "" {
			return nil, "$ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are not set (job needs permissions: id-token: write)"
		}
		return &Cached{Source: &GitHubActions{RequestURL: u, RequestToken: t, Audience: aud, HTTPClient: o.httpClient(10 * time.Second)}}, ""
	case SourceGitLab:
		v := o.GitLabVar
		if v == "" {
			v = DefaultGitLabVar
		}
		if o.env(v) == "" {
			return nil, fmt.Sprintf("$%s is not set (declare it under id_tokens: with aud: %s)", v, aud)
		}
		return &EnvSource{Var: v, Kind: SourceGitLab, Getenv: o.Getenv}, ""
	case SourceSPIFFE:
		addr := o.or(o.SPIFFEAddr, "SPIFFE_ENDPOINT_SOCKET", "")
		if addr == "" {
			return nil, "$SPIFFE_ENDPOINT_SOCKET is not set"
		}
		return &Cached{Source: &SPIFFE{Addr: addr, Audience: aud}}, ""
	case SourceGCP:
		host := o.or(o.GCPHost, "GCE_METADATA_HOST", "")
		if host == "" && !forced {
			return nil, "$GCE_METADATA_HOST is not set (name --identity gcp to use the metadata server)"
		}
		return &Cached{Source: &GCPMetadata{Host: host, Audience: aud, HTTPClient: o.httpClient(metadataTimeout)}}, ""
	case SourceAzure:
		ep := o.or(o.AzureEndpoint, "STINT_AZURE_IMDS_ENDPOINT", "")
		if ep == "" && !forced {
			return nil, "$STINT_AZURE_IMDS_ENDPOINT is not set (name --identity azure to use IMDS)"
		}
		return &Cached{Source: &AzureIMDS{Endpoint: ep, Resource: aud, ClientID: o.AzureClientID, HTTPClient: o.httpClient(metadataTimeout)}}, ""
	case SourceAWS:
		sid := o.or(o.AWSServerID, "STINT_AWS_SERVER_ID", "")
		if sid == "" {
			return nil, "$STINT_AWS_SERVER_ID is not set (the aws-iam provider's server_id)"
		}
		src, err := awsproof.New(awsproof.Options{ServerID: sid, Region: o.or(o.AWSRegion, "AWS_REGION", ""), Endpoint: o.or(o.AWSEndpoint, "STINT_AWS_STS_ENDPOINT", "")})
		if err != nil {
			return nil, err.Error()
		}
		return src, ""
	}
	return nil, "unknown source"
}

// Detect finds the workload's identity source: the one named by
// o.Identity, else the first of DetectOrder that applies here.
func Detect(o IdentityOptions) (Source, error) {
	id := o.Identity
	if id == "" {
		id = o.env("STINT_IDENTITY")
	}
	if id != "" && id != "auto" {
		if !known(id) {
			return nil, fmt.Errorf("identity: unknown source %q (want auto, %s)", id, strings.Join(DetectOrder, ", "))
		}
		s, why := o.build(id, true)
		if s == nil {
			return nil, fmt.Errorf("identity: %s: %s", id, why)
		}
		return s, nil
	}
	var tried []string
	for _, name := range DetectOrder {
		s, why := o.build(name, false)
		if s != nil {
			return s, nil
		}
		tried = append(tried, name+": "+why)
	}
	return nil, fmt.Errorf("identity: none found; pass --identity-token-file or --identity. Tried:\n  %s", strings.Join(tried, "\n  "))
}

func known(name string) bool {
	for _, n := range DetectOrder {
		if n == name {
			return true
		}
	}
	return false
}
