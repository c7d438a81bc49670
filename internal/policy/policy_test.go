package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the machine's zoneinfo

	"github.com/stint-dev/stint/internal/core"
)

// exampleWhen is the rule from ARCHITECTURE.md.
const exampleWhen = `identity.provider == "prod-cluster" && identity.namespace == "agents" &&
identity.service_account == "support-bot" &&
has(human.groups) && "support" in human.groups &&
now.getHours("Europe/Berlin") >= 7 && now.getHours("Europe/Berlin") < 20`

var ordersReadonly = core.Grant{Target: "orders-db", Role: "readonly"}

func exampleRules() []Rule {
	return []Rule{{
		Name:        "support-bot-reads-orders",
		Grants:      []string{"orders-db/readonly"},
		When:        exampleWhen,
		MaxTTL:      15 * time.Minute,
		Constraints: map[string]string{"schema": "public"},
	}}
}

func berlin(t testing.TB, hour, minute int) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// A Tuesday in winter (UTC+1), so 07:00 Berlin is 06:00 UTC.
	return time.Date(2026, time.January, 13, hour, minute, 0, 0, loc)
}

func supportBot() *core.Principal {
	return &core.Principal{
		Provider: "prod-cluster",
		Kind:     "kubernetes",
		Subject:  "system:serviceaccount:agents:support-bot",
		Attributes: map[string]any{
			"cluster":         "prod-eu-1",
			"namespace":       "agents",
			"service_account": "support-bot",
		},
	}
}

func supportHuman() *core.Principal {
	return &core.Principal{
		Provider: "corp-sso",
		Kind:     "oidc",
		Subject:  "alice",
		Attributes: map[string]any{
			"email":  "alice@example.com",
			"groups": []string{"staff", "support"},
		},
	}
}

func compile(t testing.TB, rules []Rule) *Engine {
	t.Helper()
	e, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func request(g core.Grant, ttl int) map[string]any {
	return map[string]any{"target": g.Target, "role": g.Role, "ttl": ttl}
}

func TestEvaluateArchitectureExample(t *testing.T) {
	e := compile(t, exampleRules())
	otherNS := supportBot()
	otherNS.Attributes["namespace"] = "default"
	notSupport := supportHuman()
	notSupport.Attributes["groups"] = []string{"staff"}
	noGroups := supportHuman()
	delete(noGroups.Attributes, "groups")

	tests := []struct {
		name       string
		identity   *core.Principal
		human      *core.Principal
		grant      core.Grant
		now        time.Time
		wantAllow  bool
		wantReason string
	}{
		{"in hours allows", supportBot(), supportHuman(), ordersReadonly, berlin(t, 10, 0), true, "allowed by rule support-bot-reads-orders"},
		{"first minute of hours allows", supportBot(), supportHuman(), ordersReadonly, berlin(t, 7, 0), true, "allowed by rule support-bot-reads-orders"},
		{"before hours denies", supportBot(), supportHuman(), ordersReadonly, berlin(t, 6, 59), false, "rule support-bot-reads-orders: condition false"},
		{"at closing denies", supportBot(), supportHuman(), ordersReadonly, berlin(t, 20, 0), false, "rule support-bot-reads-orders: condition false"},
		// 06:30 UTC is 07:30 in Berlin: the rule must use Berlin hours, not UTC.
		{"hours are Berlin hours", supportBot(), supportHuman(), ordersReadonly, time.Date(2026, 1, 13, 6, 30, 0, 0, time.UTC), true, "allowed by rule"},
		{"wrong namespace denies", otherNS, supportHuman(), ordersReadonly, berlin(t, 10, 0), false, "rule support-bot-reads-orders: condition false"},
		{"missing human denies", supportBot(), nil, ordersReadonly, berlin(t, 10, 0), false, "rule support-bot-reads-orders: condition false"},
		{"human without groups denies", supportBot(), noGroups, ordersReadonly, berlin(t, 10, 0), false, "rule support-bot-reads-orders: condition false"},
		{"human not in group denies", supportBot(), notSupport, ordersReadonly, berlin(t, 10, 0), false, "rule support-bot-reads-orders: condition false"},
		{"other grant denies", supportBot(), supportHuman(), core.Grant{Target: "orders-db", Role: "admin"}, berlin(t, 10, 0), false, "no rule grants orders-db/admin"},
		{"no identity denies", nil, supportHuman(), ordersReadonly, berlin(t, 10, 0), false, "no identity"},
		{"empty grant denies", supportBot(), supportHuman(), core.Grant{}, berlin(t, 10, 0), false, "invalid grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Evaluate(Input{Identity: tt.identity, Human: tt.human, Grant: tt.grant, Request: request(tt.grant, 600), Now: tt.now})
			if d.Allow != tt.wantAllow {
				t.Fatalf("Allow = %v, want %v (reason %q)", d.Allow, tt.wantAllow, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tt.wantReason)
			}
			if tt.wantAllow {
				if d.Rule != "support-bot-reads-orders" || d.MaxTTL != 15*time.Minute || d.Constraints["schema"] != "public" {
					t.Errorf("decision = %+v, want rule, max TTL and constraints of the rule", d)
				}
			} else if d.MaxTTL != 0 || d.Constraints != nil {
				t.Errorf("deny carries allow data: %+v", d)
			}
		})
	}
}

func TestEvaluateWildcardGrants(t *testing.T) {
	tests := []struct {
		pattern string
		grant   core.Grant
		want    bool
	}{
		{"orders-db/*", ordersReadonly, true},
		{"orders-db/*", core.Grant{Target: "orders-db", Role: "admin"}, true},
		{"orders-db/*", core.Grant{Target: "orders-db-2", Role: "readonly"}, false},
		{"*/readonly", ordersReadonly, true},
		{"*/readonly", core.Grant{Target: "users-db", Role: "readwrite"}, false},
		{"*/*", core.Grant{Target: "stint", Role: "admin"}, true},
		{"*/*", core.Grant{Target: "", Role: "admin"}, false},
		{"*/*", core.Grant{Target: "x", Role: "a/b"}, false},
		{"stint/admin", core.AdminGrant, true},
		{"stint/admin", core.Grant{Target: "stint", Role: "admins"}, false},
		{"orders-*/read*", ordersReadonly, true},
		{"orders-*/read*", core.Grant{Target: "users-db", Role: "readonly"}, false},
		{"*-db/*only", ordersReadonly, true},
		{"o*d*-db/readonly", ordersReadonly, true},
		{"o*x*-db/readonly", ordersReadonly, false},
		// '*' stays within its segment: it never spans the '/'.
		{"orders*", ordersReadonly, false},
		// a prefix and a suffix that overlap in the name must not both match.
		{"ab*ba/r", core.Grant{Target: "aba", Role: "r"}, false},
		{"ab*ba/r", core.Grant{Target: "abba", Role: "r"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.grant.String(), func(t *testing.T) {
			e, err := Compile([]Rule{{Name: "r", Grants: []string{"none/none", tt.pattern}}})
			if tt.pattern == "orders*" {
				// Not a valid pattern; it must be refused, not silently match nothing.
				if err == nil {
					t.Fatal("Compile accepted a pattern without a role segment")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := e.Evaluate(Input{Identity: supportBot(), Grant: tt.grant})
			if d.Allow != tt.want {
				t.Errorf("Allow = %v, want %v (reason %q)", d.Allow, tt.want, d.Reason)
			}
		})
	}
}

func TestEvaluateDenyAndOrder(t *testing.T) {
	allowAll := Rule{Name: "allow-all", Grants: []string{"*/*"}, MaxTTL: time.Hour}
	tests := []struct {
		name       string
		rules      []Rule
		human      *core.Principal
		wantAllow  bool
		wantRule   string
		wantReason []string
		notReason  []string
	}{
		{
			name: "deny overrides an earlier allow",
			rules: []Rule{allowAll,
				{Name: "no-prod-writes", Grants: []string{"orders-db/*"}, Deny: true, When: `identity.namespace == "agents"`}},
			wantRule: "no-prod-writes", wantReason: []string{"denied by rule no-prod-writes"},
		},
		{
			name: "deny with false condition lets allow through",
			rules: []Rule{
				{Name: "no-default-ns", Grants: []string{"*/*"}, Deny: true, When: `identity.namespace == "default"`},
				allowAll},
			wantAllow: true, wantRule: "allow-all",
		},
		{
			name: "deny for another grant does not apply",
			rules: []Rule{allowAll,
				{Name: "no-admin", Grants: []string{"stint/admin"}, Deny: true}},
			wantAllow: true, wantRule: "allow-all",
		},
		{
			name: "deny whose condition errors fails closed",
			rules: []Rule{allowAll,
				{Name: "block-contractors", Grants: []string{"*/*"}, Deny: true, When: `human.email.endsWith("@contractor.example")`}},
			wantRule: "block-contractors", wantReason: []string{"deny rule block-contractors failed, failing closed", "no such key: email"},
		},
		{
			name: "deny whose condition errors fails closed even with a human",
			rules: []Rule{allowAll,
				{Name: "block-contractors", Grants: []string{"*/*"}, Deny: true, When: `human.email.endsWith("@contractor.example") || human.team == "x"`}},
			human:    &core.Principal{Attributes: map[string]any{"email": "a@example.com"}},
			wantRule: "block-contractors", wantReason: []string{"no such key: team"},
		},
		{
			name: "first true allow wins, in config order",
			rules: []Rule{
				{Name: "narrow", Grants: []string{"orders-db/readonly"}, When: `identity.namespace == "agents"`, MaxTTL: 5 * time.Minute},
				{Name: "broad", Grants: []string{"orders-db/*"}, MaxTTL: time.Hour}},
			wantAllow: true, wantRule: "narrow",
		},
		{
			name: "a false allow falls through to the next",
			rules: []Rule{
				{Name: "other-ns", Grants: []string{"orders-db/readonly"}, When: `identity.namespace == "billing"`},
				{Name: "broad", Grants: []string{"orders-db/*"}}},
			wantAllow: true, wantRule: "broad",
		},
		{
			name: "an erroring allow does not allow and the reason lists every candidate",
			rules: []Rule{
				{Name: "needs-groups", Grants: []string{"orders-db/readonly"}, When: `"support" in human.groups`},
				{Name: "other-ns", Grants: []string{"orders-db/*"}, When: `identity.namespace == "billing"`},
				{Name: "unrelated", Grants: []string{"users-db/*"}}},
			wantReason: []string{"no rule allows orders-db/readonly", "rule needs-groups: no such key: groups", "rule other-ns: condition false"},
			notReason:  []string{"unrelated"},
		},
		{
			name:       "no rules at all deny by default",
			wantReason: []string{"no rule grants orders-db/readonly"},
		},
		{
			name:       "only a deny rule for the grant is not a grant",
			rules:      []Rule{{Name: "nothing", Grants: []string{"orders-db/*"}, Deny: true, When: `false`}},
			wantReason: []string{"no rule grants orders-db/readonly"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := compile(t, tt.rules)
			in := Input{Identity: supportBot(), Human: tt.human, Grant: ordersReadonly, Request: request(ordersReadonly, 60), Now: berlin(t, 12, 0)}
			for _, d := range []Decision{e.Evaluate(in), e.Explain(in).Decision} {
				if d.Allow != tt.wantAllow || d.Rule != tt.wantRule {
					t.Fatalf("decision = %+v, want allow %v by rule %q", d, tt.wantAllow, tt.wantRule)
				}
				for _, s := range tt.wantReason {
					if !strings.Contains(d.Reason, s) {
						t.Errorf("Reason = %q, want it to contain %q", d.Reason, s)
					}
				}
				for _, s := range tt.notReason {
					if strings.Contains(d.Reason, s) {
						t.Errorf("Reason = %q, must not contain %q", d.Reason, s)
					}
				}
			}
		})
	}
}

func TestExplainTracesEveryRule(t *testing.T) {
	e := compile(t, []Rule{
		{Name: "first", Grants: []string{"orders-db/*"}},
		{Name: "second", Grants: []string{"orders-db/readonly"}, When: `human.email == "x"`},
		{Name: "elsewhere", Grants: []string{"users-db/*"}},
		{Name: "guard", Grants: []string{"*/*"}, Deny: true, When: `identity.namespace == "default"`},
	})
	x := e.Explain(Input{Identity: supportBot(), Grant: ordersReadonly, Now: berlin(t, 12, 0)})
	if !x.Decision.Allow || x.Decision.Rule != "first" {
		t.Fatalf("decision = %+v, want allow by first", x.Decision)
	}
	want := []RuleTrace{
		{Rule: "first", GrantMatched: true, Evaluated: true, Result: true},
		// Evaluated although "first" already allowed, so the admin sees it would fail.
		{Rule: "second", GrantMatched: true, Evaluated: true, Error: "no such key: email"},
		{Rule: "elsewhere"},
		{Rule: "guard", Deny: true, GrantMatched: true, Evaluated: true},
	}
	if len(x.Rules) != len(want) {
		t.Fatalf("got %d traces, want %d", len(x.Rules), len(want))
	}
	for i, w := range want {
		g := x.Rules[i]
		if (g.Err != nil) != (w.Error != "") {
			t.Errorf("trace %d Err = %v, want error %q", i, g.Err, w.Error)
		}
		g.Err = nil
		if g != w {
			t.Errorf("trace %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestEvaluateVariables(t *testing.T) {
	tests := []struct {
		when string
		want bool
	}{
		{`request.ttl <= 900 && request.target == "orders-db" && request.role == "readonly"`, true},
		{`request.ttl > 900`, false},
		{`identity.kind == "kubernetes" && identity.subject.startsWith("system:serviceaccount:")`, true},
		{`identity.issuer == ""`, true},
		{`now.getDayOfWeek("Europe/Berlin") >= 1 && now.getDayOfWeek("Europe/Berlin") <= 5`, true},
		{`now.getHours("+01:00") == 12`, true},
		{`now > timestamp("2026-01-01T00:00:00Z")`, true},
		{`identity.subject.split(":").size() == 4`, true},              // strings extension
		{`identity.cluster.upperAscii() == "PROD-EU-1"`, true},         // strings extension
		{`sets.intersects(human.groups, ["support", "oncall"])`, true}, // sets extension
		{`human.?team.orValue("none") == "none"`, true},                // optional types
		{`!has(human.team) && has(human.email)`, true},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			e := compile(t, []Rule{{Name: "r", Grants: []string{"*/*"}, When: tt.when}})
			x := e.Explain(Input{Identity: supportBot(), Human: supportHuman(), Grant: ordersReadonly, Request: request(ordersReadonly, 600), Now: berlin(t, 12, 0)})
			if x.Rules[0].Err != nil {
				t.Fatalf("evaluation error: %v", x.Rules[0].Err)
			}
			if x.Decision.Allow != tt.want {
				t.Errorf("Allow = %v, want %v (%s)", x.Decision.Allow, tt.want, x.Decision.Reason)
			}
		})
	}
}

func TestReasonNeverQuotesRequestValues(t *testing.T) {
	const secret = "s3cr3t-body-value"
	for _, when := range []string{
		`request.headers[request.body] == "x"`,
		`int(request.body) == 1`,
		`timestamp(request.body) < now`,
		`now.getHours(request.body) == 1`,
		`request.body.matches("^x$") && request.headers[request.body] == ""`,
	} {
		for _, deny := range []bool{false, true} {
			e := compile(t, []Rule{{Name: "r", Grants: []string{"*/*"}, When: when, Deny: deny}})
			d := e.Evaluate(Input{Identity: supportBot(), Grant: ordersReadonly, Request: map[string]any{"body": secret, "headers": map[string]any{}}, Now: berlin(t, 12, 0)})
			if d.Allow {
				t.Fatalf("%s: allowed", when)
			}
			if strings.Contains(d.Reason, secret) {
				t.Errorf("%s (deny %v): reason %q quotes the request body", when, deny, d.Reason)
			}
		}
	}
}

func TestCostLimitStopsRunawayComprehension(t *testing.T) {
	e := compile(t, []Rule{{Name: "runaway", Grants: []string{"*/*"},
		When: `request.items.all(a, request.items.all(b, request.items.all(c, a + b + c >= 0)))`}})
	items := make([]any, 1000)
	for i := range items {
		items[i] = int64(i)
	}
	start := time.Now()
	d := e.Evaluate(Input{Identity: supportBot(), Grant: ordersReadonly, Request: map[string]any{"items": items}, Now: berlin(t, 12, 0)})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("evaluation took %s; the cost limit did not stop it", elapsed)
	}
	if d.Allow || !strings.Contains(d.Reason, "cost limit") {
		t.Errorf("decision = %+v, want a deny naming the cost limit", d)
	}
	// The same rule over a small list is fine: the limit is on work, not on syntax.
	d = e.Evaluate(Input{Identity: supportBot(), Grant: ordersReadonly, Request: map[string]any{"items": items[:5]}, Now: berlin(t, 12, 0)})
	if !d.Allow {
		t.Errorf("small input denied: %s", d.Reason)
	}
}

func TestConstraintsAreCopies(t *testing.T) {
	rules := []Rule{{Name: "r", Grants: []string{"*/*"}, Constraints: map[string]string{"scope": "read"}}}
	e := compile(t, rules)
	rules[0].Constraints["scope"] = "changed after compile"
	d := e.Evaluate(Input{Identity: supportBot(), Grant: ordersReadonly})
	d.Constraints["scope"] = "changed by caller"
	if got := e.Evaluate(Input{Identity: supportBot(), Grant: ordersReadonly}).Constraints["scope"]; got != "read" {
		t.Errorf("constraint = %q, want read", got)
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	rules := []Rule{
		{Name: "ok", Grants: []string{"orders-db/readonly"}, When: `identity.namespace == "agents"`},
		{Name: "syntax", Grants: []string{"a/b"}, When: `identity.namespace ==`},
		{Name: "not-bool", Grants: []string{"a/b"}, When: `identity.namespace`},
		{Name: "int-result", Grants: []string{"a/b"}, When: `1 + 2`},
		{Name: "unknown-var", Grants: []string{"a/b"}, When: `workload.name == "x"`},
		{Name: "bad-grant", Grants: []string{"a/b", "a/b", "orders-db", "a/b/c", "/x", "x/", "orders db/ro"}},
		{Name: "", Grants: []string{"a/b"}},
		{Name: "ok", Grants: []string{"a/b"}},
		{Name: "no-grants"},
		{Name: "negative-ttl", Grants: []string{"a/b"}, MaxTTL: -time.Minute},
		{Name: "too-long", Grants: []string{"a/b"}, When: strings.Repeat("true && ", MaxConditionSize/8+1) + "true"},
		{Name: "blank", Grants: []string{"a/b"}, When: "  \n"},
		{Name: "deny-with-cap", Grants: []string{"a/b"}, Deny: true, MaxTTL: time.Minute, Constraints: map[string]string{"scope": "x"}},
	}
	want := []struct {
		index int
		field string
		text  string
	}{
		{1, "when", "Syntax error"},
		{2, "when", "want bool"},
		{3, "when", "want bool"},
		{4, "when", "undeclared reference to 'workload'"},
		{5, "grants[2]", "want target/role"},
		{5, "grants[3]", "want target/role"},
		{5, "grants[4]", "target: empty"},
		{5, "grants[5]", "role: empty"},
		{5, "grants[6]", "not allowed"},
		{6, "name", "empty"},
		{7, "name", "duplicate of rule 0"},
		{8, "grants", "empty"},
		{9, "max_ttl", "negative"},
		{10, "when", "size"},
		{11, "when", "blank"},
		{12, "max_ttl", "deny rule"},
		{12, "constraints", "deny rule"},
	}
	e, err := Compile(rules)
	if e != nil || err == nil {
		t.Fatalf("Compile = %v, %v; want only an error", e, err)
	}
	var got []*CompileError
	for _, err := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *CompileError", err)
		}
		got = append(got, ce)
	}
	if len(got) != len(want) {
		for _, g := range got {
			t.Log(g)
		}
		t.Fatalf("got %d errors, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Index != w.index || g.Field != w.field || !strings.Contains(g.Err.Error(), w.text) || g.Rule != rules[w.index].Name {
			t.Errorf("error %d = {%d %q %q %v}, want index %d field %q containing %q", i, g.Index, g.Rule, g.Field, g.Err, w.index, w.field, w.text)
		}
		if !strings.HasPrefix(g.Error(), "policy: rule ") {
			t.Errorf("error text %q lacks the package prefix", g.Error())
		}
	}
}

func TestCompileEmptyConditionIsTrue(t *testing.T) {
	e := compile(t, []Rule{{Name: "always", Grants: []string{"stint/admin"}}})
	if d := e.Evaluate(Input{Identity: supportBot(), Grant: core.AdminGrant}); !d.Allow {
		t.Errorf("empty condition denied: %s", d.Reason)
	}
}

func TestEvaluateIsSafeForConcurrentUse(t *testing.T) {
	e := compile(t, exampleRules())
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 200; i++ {
				d := e.Evaluate(Input{Identity: supportBot(), Human: supportHuman(), Grant: ordersReadonly, Now: berlin(t, 8+i%20, 0)})
				ok = ok && d.Allow == (8+i%20 < 20)
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("a concurrent evaluation gave a wrong decision")
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	e := compile(b, exampleRules())
	in := Input{Identity: supportBot(), Human: supportHuman(), Grant: ordersReadonly, Request: request(ordersReadonly, 600), Now: berlin(b, 10, 0)}
	if d := e.Evaluate(in); !d.Allow {
		b.Fatalf("benchmark input denied: %s", d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Evaluate(in)
	}
}
