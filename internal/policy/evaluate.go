package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/stint-dev/stint/internal/core"
)

// Input is everything a condition may look at.
type Input struct {
	// Identity is the verified caller; required.
	Identity *core.Principal
	// Human is the principal the caller acts for, if any. Without one,
	// `human` is an empty map: has(human.groups) is false and human.email
	// is a "no such key" error.
	Human *core.Principal
	// Grant is what is asked for; it selects the rules that apply.
	Grant core.Grant
	// Request is the `request` variable: target, role, ttl (seconds, int),
	// audience, scope, and for proxied calls method, path, headers, body.
	// The caller fills it; policy does not derive it from Grant.
	Request map[string]any
	// Now is the `now` variable. If zero, the current time is used.
	Now time.Time
}

// Decision is the outcome of an evaluation.
type Decision struct {
	// Allow is true only when an allow rule's condition held and no deny
	// rule's condition held or failed.
	Allow bool
	// Rule names the allow rule that granted, or the deny rule that refused;
	// empty for a default deny.
	Rule string
	// MaxTTL is the allowing rule's cap, 0 for none.
	MaxTTL time.Duration
	// Constraints are the allowing rule's constraints.
	Constraints map[string]string
	// Reason explains the outcome in words safe to log, audit and show an
	// admin: rule names, grant, and error kinds, but no input values beyond
	// key names the rule itself spells out.
	Reason string
}

// RuleTrace is what happened to one rule during Explain.
type RuleTrace struct {
	// Rule is the rule's name.
	Rule string
	// Deny is true for a deny rule.
	Deny bool
	// GrantMatched reports whether one of the rule's patterns matched the
	// requested grant; only then is the condition evaluated.
	GrantMatched bool
	// Evaluated reports whether the condition was evaluated.
	Evaluated bool
	// Result is the condition's value; false when it failed.
	Result bool
	// Error is the evaluation failure in words safe to show, or "".
	Error string
	// Err is the raw evaluation error. It may quote input values, so it is
	// meant for the admin dry run, never for logs or audit events.
	Err error
}

// Explanation is a decision with the trace of every rule.
type Explanation struct {
	Decision Decision
	// Rules has one entry per rule, in config order.
	Rules []RuleTrace
}

// Evaluate decides whether in.Identity may have in.Grant. It never fails:
// every problem yields a deny with a reason.
func (e *Engine) Evaluate(in Input) Decision {
	return e.decide(in, nil)
}

// Explain decides like Evaluate and also evaluates every rule whose grant
// matches, reporting what each did.
func (e *Engine) Explain(in Input) Explanation {
	trace := make([]RuleTrace, len(e.rules))
	for i, r := range e.rules {
		trace[i] = RuleTrace{Rule: r.name, Deny: r.deny}
	}
	d := e.decide(in, trace)
	return Explanation{Decision: d, Rules: trace}
}

// decide applies the rules. With a trace it evaluates every matching rule
// for the record; without one it stops as soon as the outcome is known.
// Both paths reach the same decision.
func (e *Engine) decide(in Input, trace []RuleTrace) Decision {
	if in.Identity == nil {
		return Decision{Reason: "no identity to evaluate"}
	}
	// A '*' pattern matches an empty segment, so an empty grant must not
	// reach the rules.
	if in.Grant.Target == "" || in.Grant.Role == "" || strings.Contains(in.Grant.Role, "/") {
		return Decision{Reason: "invalid grant: want target/role"}
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	req := in.Request
	if req == nil {
		req = map[string]any{}
	}
	act := &activation{
		identity: in.Identity.Map(),
		human:    in.Human.Map(),
		request:  req,
		now:      types.Timestamp{Time: now},
	}
	// Deny rules first, in any order: one that holds or fails refuses.
	var deny *Decision
	for i := range e.rules {
		r := &e.rules[i]
		if !r.deny || !r.matches(in.Grant) {
			continue
		}
		ok, err := r.eval(act, trace, i)
		if deny != nil {
			continue
		}
		switch {
		case err != nil:
			deny = &Decision{Rule: r.name, Reason: fmt.Sprintf("deny rule %s failed, failing closed: %s", r.name, safeError(err, r.when))}
		case ok:
			deny = &Decision{Rule: r.name, Reason: "denied by rule " + r.name}
		}
		if deny != nil && trace == nil {
			return *deny
		}
	}
	// Then the first allow rule that holds, in config order.
	var allow *Decision
	var failures []string
	for i := range e.rules {
		r := &e.rules[i]
		if r.deny || !r.matches(in.Grant) {
			continue
		}
		ok, err := r.eval(act, trace, i)
		if allow != nil {
			continue
		}
		switch {
		case err != nil:
			failures = append(failures, "rule "+r.name+": "+safeError(err, r.when))
		case !ok:
			failures = append(failures, "rule "+r.name+": condition false")
		default:
			allow = &Decision{
				Allow:       true,
				Rule:        r.name,
				MaxTTL:      r.maxTTL,
				Constraints: cloneConstraints(r.constraints),
				Reason:      "allowed by rule " + r.name,
			}
		}
		if allow != nil && trace == nil {
			break
		}
	}
	switch {
	case deny != nil:
		return *deny
	case allow != nil:
		return *allow
	case len(failures) == 0:
		return Decision{Reason: "no rule grants " + in.Grant.String()}
	default:
		return Decision{Reason: "no rule allows " + in.Grant.String() + ": " + strings.Join(failures, "; ")}
	}
}

// cloneConstraints keeps callers from changing the engine's copy.
func cloneConstraints(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (r *compiled) matches(g core.Grant) bool {
	for _, p := range r.patterns {
		if p.match(g) {
			return true
		}
	}
	return false
}

// eval runs the condition and records the outcome in trace[i] when tracing.
func (r *compiled) eval(act *activation, trace []RuleTrace, i int) (bool, error) {
	ok, err := r.run(act)
	if trace != nil {
		t := &trace[i]
		t.GrantMatched, t.Evaluated, t.Result, t.Err = true, true, ok, err
		if err != nil {
			t.Error = safeError(err, r.when)
		}
	}
	return ok, err
}

func (r *compiled) run(act *activation) (bool, error) {
	if r.prg == nil {
		return true, nil
	}
	out, _, err := r.prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		// The checker proved the type is bool; this guards against a
		// library surprise rather than a user mistake.
		return false, fmt.Errorf("result is %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}
