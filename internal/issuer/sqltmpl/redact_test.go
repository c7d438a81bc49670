package sqltmpl

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	inner := errors.New(`Error 1064: syntax error near 'IDENTIFIED BY 'Pa55w0rd-xyz' PASSWORD EXPIRE'`)
	err := Redact(fmt.Errorf("create user: %w", inner), "Pa55w0rd-xyz")
	if strings.Contains(err.Error(), "Pa55w0rd-xyz") || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("%v", err)
	}
	if errors.Unwrap(err) != nil {
		t.Fatal("the redacted error still wraps the original")
	}
	if Redact(nil, "x") != nil {
		t.Fatal("nil in, nil out")
	}
}

// Inside a PostgreSQL dollar-quoted body no escaping helps: a '$' in an
// attribute is refused there, and allowed elsewhere.
func TestDollarQuotedTemplateRefusesDollarValues(t *testing.T) {
	body, err := Parse("c", `DO $$ BEGIN RAISE NOTICE '{{.Principal.ref}}'; END $$;`, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	evil := Data{Name: "n", Password: "p", LeaseID: "l", Principal: map[string]Value{"ref": {s: "x$$; DROP TABLE t; --"}}}
	if _, err := body.Execute(evil); err == nil || !strings.Contains(err.Error(), "dollar") {
		t.Fatalf("got %v", err)
	}
	plain, err := Parse("c", `COMMENT ON ROLE n IS '{{.Principal.ref}}';`, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := plain.Execute(evil); err != nil || !strings.Contains(out, "x$$; DROP") {
		t.Fatalf("outside a dollar quote the value is a quoted literal: %q %v", out, err)
	}
}
