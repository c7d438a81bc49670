package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/config"
)

// stint policy check and stint server report every problem at once, each
// with file:line: bad CEL, an unknown type, a missing file, a bad duration.
func TestCheckReportsEverythingWithLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stint.yaml")
	text := `server:
  store: sqlite://` + dir + `/stint.db
identity_providers:
  - name: k
    type: kubernets
    issuer: https://k
    jwks_file: ` + dir + `/missing.json
targets:
  - name: api
    type: jwt
    roles:
      r: { audience: https://api }
policies:
  - name: broken
    grants: [api/r]
    when: identity.namespace == 
  - name: not-bool
    grants: [api/r]
    when: identity.namespace
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	err = app.Check(cfg)
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		path + ":5: identity_providers[0].type: unknown type \"kubernets\"",
		path + ":7: identity_providers[0].jwks_file: cannot read",
		path + ":16: policies[0].when:",
		path + ":19: policies[1].when:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}
