package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// FuzzCompile feeds arbitrary condition text through Compile and, when it
// compiles, through Evaluate and Explain: a config file is operator input,
// and neither step may panic or hang on it.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		exampleWhen,
		`true`,
		`identity.namespace == "agents"`,
		`"support" in human.groups`,
		`request.ttl <= 900 && request.scope.split(" ").all(s, s in ["read", "write"])`,
		`now.getHours("Europe/Berlin") >= 7`,
		`human.?email.orValue("").endsWith("@example.com")`,
		`request.items.all(a, request.items.all(b, a != b || a == b))`,
		`[1, 2, 3].map(x, x * 2).exists(y, y == 4)`,
		`identity.subject.matches("^system:serviceaccount:[a-z]+:[a-z-]+$")`,
		`1 +`,
		`identity.`,
		`((((((((((true))))))))))`,
		"\xff\xfe",
	} {
		f.Add(s)
	}
	identity := &core.Principal{Provider: "p", Subject: "s", Attributes: map[string]any{"namespace": "agents", "groups": []string{"a"}, "n": int64(3)}}
	items := make([]any, 100)
	for i := range items {
		items[i] = int64(i)
	}
	in := Input{
		Identity: identity,
		Human:    identity,
		Grant:    core.Grant{Target: "a", Role: "b"},
		Request:  map[string]any{"ttl": 600, "scope": "read write", "items": items, "body": "{}"},
		Now:      time.Date(2026, 1, 13, 10, 0, 0, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, when string) {
		e, err := Compile([]Rule{{Name: "fuzz", Grants: []string{"a/b"}, When: when}})
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) || ce.Field != "when" || ce.Index != 0 {
				t.Fatalf("error %v is not a CompileError on rule 0's condition", err)
			}
			return
		}
		d := e.Evaluate(in)
		x := e.Explain(in)
		if d.Allow != x.Decision.Allow || d.Reason != x.Decision.Reason {
			t.Fatalf("Evaluate %+v and Explain %+v disagree", d, x.Decision)
		}
	})
}
