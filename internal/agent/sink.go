package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// TemplateData is what a file sink's template sees:
// {{ .Credential.password }}, {{ .LeaseID }}, {{ .ExpiresAt }} …
type TemplateData struct {
	Name, Target, Role, LeaseID string
	ExpiresAt                   time.Time
	Renewable                   bool
	Credential                  map[string]string
}

func templateData(h Held) TemplateData {
	return TemplateData{
		Name: h.Name, Target: h.Target, Role: h.Role, LeaseID: h.Lease.LeaseID,
		ExpiresAt: h.Lease.ExpiresAt, Renewable: h.Lease.Renewable, Credential: h.Lease.Credential,
	}
}

// defaultTemplate writes the lease and credential as JSON.
const defaultTemplate = `{{ toJSON . }}
`

var templateFuncs = template.FuncMap{
	"toJSON": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// shellQuote makes a value safe inside a POSIX shell or systemd
	// EnvironmentFile assignment.
	"shellQuote": shellQuote,
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sink is a compiled SinkConfig.
type sink struct {
	cfg        SinkConfig
	tmpl       *template.Template
	mode       os.FileMode
	uid, gid   int
	renderFunc func(Held) ([]byte, error)
}

func newSink(c SinkConfig) (*sink, error) {
	s := &sink{cfg: c}
	var err error
	if s.mode, err = parseMode(c.Mode); err != nil {
		return nil, fmt.Errorf("agent: sink %s: %w", c.Path, err)
	}
	if s.uid, s.gid, err = parseOwner(c.Owner); err != nil {
		return nil, fmt.Errorf("agent: sink %s: %w", c.Path, err)
	}
	switch c.Type {
	case SinkEnvFile:
		s.renderFunc = renderEnvFile
	default:
		if s.tmpl, err = c.parse(); err != nil {
			return nil, fmt.Errorf("agent: sink %s: %w", c.Path, err)
		}
		s.renderFunc = func(h Held) ([]byte, error) {
			var b bytes.Buffer
			if err := s.tmpl.Execute(&b, templateData(h)); err != nil {
				// The template error names the template and field, never
				// a value.
				return nil, fmt.Errorf("agent: sink %s: %w", c.Path, err)
			}
			return b.Bytes(), nil
		}
	}
	return s, nil
}

// renderEnvFile writes the variables `stint exec` would set, quoted for a
// shell or a systemd EnvironmentFile.
func renderEnvFile(h Held) ([]byte, error) {
	vars, err := Env([]Held{h}, nil)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(v))
	}
	fmt.Fprintf(&b, "STINT_%s_EXPIRES_AT=%s\n", EnvName(h.Name), h.Lease.ExpiresAt.UTC().Format(time.RFC3339))
	return b.Bytes(), nil
}

// write renders h and replaces the file if its content changed; it
// reports whether it did.
func (s *sink) write(h Held) (bool, error) {
	data, err := s.renderFunc(h)
	if err != nil {
		return false, err
	}
	if old, err := os.ReadFile(s.cfg.Path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := WriteFileAtomic(s.cfg.Path, data, s.mode, s.uid, s.gid); err != nil {
		return false, err
	}
	return true, nil
}

// WriteFileAtomic writes data to a temporary file in path's directory
// with mode (and owner, when uid/gid ≥ 0), syncs it, and renames it over
// path, so a reader sees the old content or the new, never a torn file,
// and the secret is never readable with wider permissions.
func WriteFileAtomic(path string, data []byte, mode os.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	// CreateTemp makes the file 0600 already; Chmod sets the exact mode
	// (umask does not apply to it).
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("agent: write %s: %w", path, err)
	}
	return nil
}
