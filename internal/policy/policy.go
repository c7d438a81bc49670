// Package policy decides whether a verified principal may have a grant.
// Rules are CEL conditions compiled once at load and evaluated per request
// against the principal, the optional human, the request and the time.
// Default deny; a matching deny rule overrides every allow. The package is
// pure: it does no I/O and keeps no global state.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/cel-go/cel"
)

// MaxConditionSize is the largest `when` condition accepted, in code points.
// A bound at compile time keeps parsing and planning cheap whatever the
// config holds.
const MaxConditionSize = 4096

// CostLimit bounds the CEL runtime cost of one condition evaluation, so a
// rule that iterates over large request data cannot stall the server. The
// architecture's example rule costs about 20.
const CostLimit = 100_000

// Rule is one policy rule as configured.
type Rule struct {
	// Name identifies the rule in decisions, leases and audit events.
	Name string
	// Grants are "target/role" patterns the rule applies to. '*' matches any
	// run of characters within one segment: "orders-db/*", "*/readonly".
	Grants []string
	// When is a CEL condition over identity, human, request and now. Empty
	// means true.
	When string
	// MaxTTL caps the credential's lifetime; 0 leaves the target's default.
	MaxTTL time.Duration
	// Deny makes a rule whose grant and condition match refuse the request,
	// whatever any allow rule says.
	Deny bool
	// Constraints are returned verbatim on an allow decision (a scopes cap,
	// for instance); the issuer interprets them.
	Constraints map[string]string
}

// CompileError is one problem with one rule. Index is the rule's 0-based
// position in the list given to Compile, and Field names the part at fault
// ("name", "when", "grants[2]", "max_ttl") so the config loader can point
// at a file and line.
type CompileError struct {
	Index int
	Rule  string
	Field string
	Err   error
}

// Error formats the problem with the rule's position, name and field.
func (e *CompileError) Error() string {
	return fmt.Sprintf("policy: rule %d %q: %s: %v", e.Index, e.Rule, e.Field, e.Err)
}

// Unwrap returns the underlying problem.
func (e *CompileError) Unwrap() error { return e.Err }

// Engine holds compiled rules. It is immutable after Compile and safe for
// concurrent use.
type Engine struct {
	rules []compiled
}

// compiled is a rule ready to evaluate.
type compiled struct {
	name        string
	deny        bool
	maxTTL      time.Duration
	constraints map[string]string
	patterns    []pattern
	when        string      // source, to judge which error details are safe to show
	prg         cel.Program // nil when the condition is empty (always true)
}

// Compile checks and compiles rules. It reports every problem at once, as an
// errors.Join of *CompileError values.
func Compile(rules []Rule) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		// Only a bug in the declarations can get here.
		return nil, fmt.Errorf("policy: build cel environment: %w", err)
	}
	var errs []error
	fail := func(i int, name, field string, err error) {
		errs = append(errs, &CompileError{Index: i, Rule: name, Field: field, Err: err})
	}
	seen := make(map[string]int, len(rules))
	e := &Engine{rules: make([]compiled, 0, len(rules))}
	for i, r := range rules {
		c := compiled{name: r.Name, deny: r.Deny, maxTTL: r.MaxTTL, constraints: maps.Clone(r.Constraints), when: r.When}
		switch first, dup := seen[r.Name]; {
		case r.Name == "":
			fail(i, r.Name, "name", errors.New("empty"))
		case dup:
			fail(i, r.Name, "name", fmt.Errorf("duplicate of rule %d", first))
		default:
			seen[r.Name] = i
		}
		if len(r.Grants) == 0 {
			fail(i, r.Name, "grants", errors.New("empty: the rule would match nothing"))
		}
		for j, g := range r.Grants {
			p, err := parsePattern(g)
			if err != nil {
				fail(i, r.Name, fmt.Sprintf("grants[%d]", j), err)
				continue
			}
			c.patterns = append(c.patterns, p)
		}
		if r.MaxTTL < 0 {
			fail(i, r.Name, "max_ttl", fmt.Errorf("negative (%s)", r.MaxTTL))
		}
		// A deny rule grants nothing, so a cap or constraints on it can only
		// be a misunderstanding worth pointing out.
		if r.Deny && r.MaxTTL != 0 {
			fail(i, r.Name, "max_ttl", errors.New("has no effect on a deny rule"))
		}
		if r.Deny && len(r.Constraints) > 0 {
			fail(i, r.Name, "constraints", errors.New("have no effect on a deny rule"))
		}
		if r.When != "" {
			prg, err := compileCondition(env, r.When)
			if err != nil {
				fail(i, r.Name, "when", err)
			}
			c.prg = prg
		}
		e.rules = append(e.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}
