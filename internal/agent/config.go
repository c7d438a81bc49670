package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/stint-dev/stint/internal/config"
)

// Config is agent.yaml: where the server is, how to find the identity,
// and which credentials to keep where.
type Config struct {
	// Server is the stint address (default $STINT_ADDR, else client.DefaultAddr).
	Server   string         `yaml:"server"`
	Identity IdentityConfig `yaml:"identity"`
	// StateFile records held leases so a restart revokes or adopts them
	// instead of leaking them (default: none — leases of a crashed agent
	// then simply expire).
	StateFile string `yaml:"state_file"`
	// OnStart is what to do with leases found in the state file: revoke
	// (default) or adopt (keep those still active, with their credential).
	OnStart     string             `yaml:"on_start"`
	Health      HealthConfig       `yaml:"health"`
	Retry       RetryConfig        `yaml:"retry"`
	Credentials []CredentialConfig `yaml:"credentials"`

	file  string
	lines map[string]int
}

// IdentityConfig mirrors the CLI's identity flags.
type IdentityConfig struct {
	Source        string `yaml:"source"`
	TokenFile     string `yaml:"token_file"`
	KubeTokenFile string `yaml:"kube_token_file"`
	Audience      string `yaml:"audience"`
	GitLabVar     string `yaml:"gitlab_token_var"`
	SPIFFESocket  string `yaml:"spiffe_socket"`
	GCPHost       string `yaml:"gcp_metadata_host"`
	AzureEndpoint string `yaml:"azure_imds_endpoint"`
	AzureClientID string `yaml:"azure_client_id"`
}

// Options converts to IdentityOptions.
func (c IdentityConfig) Options() IdentityOptions {
	return IdentityOptions{
		Identity: c.Source, TokenFile: c.TokenFile, KubeTokenFile: c.KubeTokenFile, Audience: c.Audience,
		GitLabVar: c.GitLabVar, SPIFFEAddr: c.SPIFFESocket, GCPHost: c.GCPHost, AzureEndpoint: c.AzureEndpoint,
		AzureClientID: c.AzureClientID,
	}
}

// HealthConfig configures the health endpoint.
type HealthConfig struct {
	// Listen is host:port for GET /healthz (default: no endpoint).
	Listen string `yaml:"listen"`
	// UnhealthyWithin: unhealthy when a credential expires sooner than this (default 30s).
	UnhealthyWithin config.Duration `yaml:"unhealthy_within"`
}

// RetryConfig bounds the backoff while the server is unreachable.
type RetryConfig struct {
	Initial config.Duration `yaml:"initial"` // default 1s
	Max     config.Duration `yaml:"max"`     // default 30s
}

// CredentialConfig is one credential the agent keeps.
type CredentialConfig struct {
	Name   string `yaml:"name"`
	Target string `yaml:"target"`
	Role   string `yaml:"role"`
	// TTL asked for (default: the role's).
	TTL   config.Duration `yaml:"ttl"`
	Scope string          `yaml:"scope"`
	Sinks []SinkConfig    `yaml:"sinks"`
	// Command runs (no shell) after the credential's sinks changed.
	Command        []string        `yaml:"command"`
	CommandTimeout config.Duration `yaml:"command_timeout"` // default 30s
}

// Sink types.
const (
	SinkFile    = "file"
	SinkEnvFile = "env-file"
)

// SinkConfig is where a credential is written.
type SinkConfig struct {
	// Type is file (a Go template over the credential) or env-file.
	Type string `yaml:"type"`
	Path string `yaml:"path"`
	// Template (or TemplateFile) renders a file sink; default: JSON of the lease and credential.
	Template     string `yaml:"template"`
	TemplateFile string `yaml:"template_file"`
	// Mode is octal (default "0600").
	Mode string `yaml:"mode"`
	// Owner is "uid" or "uid:gid" (default: the agent's).
	Owner string `yaml:"owner"`
}

// LoadConfig reads agent.yaml strictly (unknown keys are errors), fills
// defaults and validates, reporting every problem with file:line.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig is LoadConfig on data already read; name is for messages.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{}
	lines, err := config.DecodeStrict(name, data, c)
	if err != nil {
		return nil, err
	}
	c.file, c.lines = name, lines
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.OnStart == "" {
		c.OnStart = "revoke"
	}
	if c.Health.UnhealthyWithin == 0 {
		c.Health.UnhealthyWithin = config.Duration(30 * time.Second)
	}
	if c.Retry.Initial == 0 {
		c.Retry.Initial = config.Duration(time.Second)
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = config.Duration(30 * time.Second)
	}
	for i := range c.Credentials {
		cc := &c.Credentials[i]
		if cc.Name == "" {
			cc.Name = cc.Target
		}
		if cc.CommandTimeout == 0 {
			cc.CommandTimeout = config.Duration(30 * time.Second)
		}
		for j := range cc.Sinks {
			if cc.Sinks[j].Mode == "" {
				cc.Sinks[j].Mode = "0600"
			}
		}
	}
}

func (c *Config) errorf(path, format string, args ...any) error {
	line := 0
	for p := path; ; {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			line = c.lines[""]
			break
		}
		p = p[:i]
	}
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		return fmt.Errorf("%s:%d: %s: %s", c.file, line, path, msg)
	}
	return fmt.Errorf("%s: %s: %s", c.file, path, msg)
}

func (c *Config) validate() error {
	var errs []error
	add := func(path, f string, a ...any) { errs = append(errs, c.errorf(path, f, a...)) }
	if c.OnStart != "revoke" && c.OnStart != "adopt" {
		add("on_start", "want revoke or adopt, got %q", c.OnStart)
	}
	if c.OnStart == "adopt" && c.StateFile == "" {
		add("on_start", "adopt needs a state_file")
	}
	if s := c.Identity.Source; s != "" && s != "auto" && !known(s) {
		add("identity.source", "unknown source %q (want auto, %s)", s, strings.Join(DetectOrder, ", "))
	}
	if c.Retry.Max < c.Retry.Initial {
		add("retry.max", "is shorter than retry.initial")
	}
	if len(c.Credentials) == 0 {
		add("credentials", "at least one credential is required")
	}
	names := map[string]bool{}
	paths := map[string]string{}
	for i, cc := range c.Credentials {
		p := fmt.Sprintf("credentials[%d]", i)
		if cc.Target == "" {
			add(p+".target", "is required")
		}
		if cc.Role == "" {
			add(p+".role", "is required")
		}
		if names[cc.Name] {
			add(p+".name", "%q is used twice", cc.Name)
		}
		names[cc.Name] = true
		if len(cc.Sinks) == 0 {
			add(p+".sinks", "at least one sink is required")
		}
		for j, s := range cc.Sinks {
			sp := fmt.Sprintf("%s.sinks[%d]", p, j)
			switch s.Type {
			case SinkFile:
				if s.Template != "" && s.TemplateFile != "" {
					add(sp+".template", "set template or template_file, not both")
				}
				if _, err := s.parse(); err != nil {
					add(sp+".template", "%v", err)
				}
			case SinkEnvFile:
				if s.Template != "" || s.TemplateFile != "" {
					add(sp+".template", "an env-file sink takes no template")
				}
			default:
				add(sp+".type", "want file or env-file, got %q", s.Type)
			}
			if s.Path == "" {
				add(sp+".path", "is required")
			} else if other, ok := paths[s.Path]; ok {
				add(sp+".path", "%s is also written by %s", s.Path, other)
			} else {
				paths[s.Path] = sp
			}
			if _, err := parseMode(s.Mode); err != nil {
				add(sp+".mode", "%v", err)
			}
			if _, _, err := parseOwner(s.Owner); err != nil {
				add(sp+".owner", "%v", err)
			}
		}
	}
	return errors.Join(errs...)
}

// parse compiles a file sink's template (syntax errors fail at load).
// Missing keys are errors when rendering, so a typo such as
// {{ .Credential.pasword }} fails loudly instead of writing an empty
// password; the previous file is then kept.
func (s SinkConfig) parse() (*template.Template, error) {
	text := s.Template
	if s.TemplateFile != "" {
		b, err := os.ReadFile(s.TemplateFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	if text == "" {
		text = defaultTemplate
	}
	t, err := template.New(s.Path).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("mode %q: want octal permissions such as 0600", s)
	}
	if m&0o007 != 0 {
		return 0, fmt.Errorf("mode %q: a credential file must not be readable by others", s)
	}
	return os.FileMode(m), nil
}

// parseOwner parses "uid" or "uid:gid"; -1 means unchanged.
func parseOwner(s string) (int, int, error) {
	if s == "" {
		return -1, -1, nil
	}
	u, g, hasG := strings.Cut(s, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("owner %q: want numeric uid or uid:gid", s)
	}
	gid := -1
	if hasG {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("owner %q: want numeric uid or uid:gid", s)
		}
	}
	return uid, gid, nil
}
