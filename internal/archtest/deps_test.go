// Package archtest holds the dependency test: it fails when a package
// imports against the direction ARCHITECTURE.md sets
// (cmd → app → server → broker → implementations → store → core).
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/stint-dev/stint/"

// forbidden maps a package prefix to the prefixes it must never depend on
// (directly or transitively).
var forbidden = []struct {
	pkg   string
	never []string
	why   string
}{
	{"internal/core", []string{"internal/"}, "core imports nothing internal"},
	{"internal/store", []string{"internal/broker", "internal/server", "internal/app", "internal/lease", "internal/issuer", "internal/identity", "internal/policy", "internal/audit"}, "store sits under everything but core"},
	{"internal/identity", []string{"internal/broker", "internal/server", "internal/app", "internal/lease"}, "implementations never import the orchestrator"},
	{"internal/issuer", []string{"internal/broker", "internal/server", "internal/app", "internal/lease"}, "implementations never import the orchestrator"},
	{"internal/policy", []string{"internal/broker", "internal/server", "internal/app", "internal/store", "internal/audit"}, "policy is pure"},
	{"internal/audit", []string{"internal/broker", "internal/server", "internal/app", "internal/lease"}, "implementations never import the orchestrator"},
	{"internal/keys", []string{"internal/broker", "internal/server", "internal/app", "internal/lease"}, "implementations never import the orchestrator"},
	{"internal/lease", []string{"internal/broker", "internal/server", "internal/app"}, "implementations never import the orchestrator"},
	{"internal/jwks", []string{"internal/broker", "internal/server", "internal/app"}, "implementations never import the orchestrator"},
	{"internal/broker", []string{"internal/server", "internal/app"}, "the broker knows nothing of HTTP or wiring"},
	{"internal/server", []string{"internal/app"}, "the server does not wire itself"},
	{"internal/agent", []string{"internal/server", "internal/broker", "internal/app"}, "the client side never imports server packages"},
	{"client", []string{"internal/"}, "the public client stands alone"},
}

func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], mod)
		for _, rule := range forbidden {
			if pkg != rule.pkg && !strings.HasPrefix(pkg, rule.pkg+"/") {
				continue
			}
			checked++
			for _, dep := range f[1:] {
				d, ok := strings.CutPrefix(dep, mod)
				if !ok || d == pkg || strings.HasPrefix(d, "internal/testenv") {
					continue
				}
				for _, n := range rule.never {
					if strings.HasPrefix(d, n) && !(rule.pkg == "internal/store" && strings.HasPrefix(d, "internal/store")) {
						t.Errorf("%s imports %s: %s", pkg, d, rule.why)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked: is go list output as expected?", checked)
	}
}
