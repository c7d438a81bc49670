package sqltmpl

import (
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/core"
)

func TestRenderEscapesAttributes(t *testing.T) {
	p := core.Principal{Provider: "k8s", Subject: `a"b`, Attributes: map[string]any{
		"team": `o'brien\`, "groups": []string{"a", "b'c"},
	}}
	tests := []struct {
		name, tmpl string
		d          Dialect
		want       string
	}{
		{"bare in quotes, postgres", `'{{.Principal.team}}'`, Postgres, `'o''brien\\'`},
		{"literal, postgres", `{{literal .Principal.team}}`, Postgres, `E'o''brien\\'`},
		{"ident, postgres", `{{ident .Principal.subject}}`, Postgres, `"a""b"`},
		{"literal, mysql", `{{literal .Principal.team}}`, MySQL, `'o''brien\\'`},
		{"ident, mysql", "{{ident .Principal.subject}}", MySQL, "`a\"b`"},
		{"list joined", `'{{.Principal.groups}}'`, Postgres, `'a,b''c'`},
		{"safe fields", `{{.Name}} {{.LeaseID}}`, Postgres, `n_1 l-1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("t", tt.tmpl, tt.d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tp.Execute(Data{Name: "n_1", LeaseID: "l-1", Principal: Attributes(&p)})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRenderRefusesMissingKeysAndUnsafeNames(t *testing.T) {
	tests := []struct {
		name, tmpl string
		data       Data
		want       string
	}{
		{"missing attribute", `{{.Principal.nope}}`, Data{Principal: map[string]Value{}}, `no entry for key "nope"`},
		{"no human", `{{.Human.email}}`, Data{Human: Attributes(nil)}, `no entry for key "email"`},
		{"unsafe name", `{{.Name}}`, Data{Name: `x"; drop`}, "outside"},
		{"unsafe lease id", `{{.LeaseID}}`, Data{LeaseID: `x'`}, "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("t", tt.tmpl, Postgres)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tp.Execute(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestUserNameIsStableSafeAndBounded(t *testing.T) {
	tests := []struct {
		prefix, role string
		max, hash    int
		wantPrefix   string
	}{
		{"stint", "readonly", 63, 20, "stint_readonly_"},
		{"stint", "Read-Write/ALL", 63, 20, "stint_read_write_all_"},
		{"stint", strings.Repeat("r", 100), 32, 16, "stint_rrrrrrrrr_"},
		{"stint", "x", 80, 20, "stint_x_"},
	}
	for _, tt := range tests {
		a, err := UserName(tt.prefix, tt.role, "lease-1", tt.max, tt.hash)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := UserName(tt.prefix, tt.role, "lease-1", tt.max, tt.hash)
		c, _ := UserName(tt.prefix, tt.role, "lease-2", tt.max, tt.hash)
		if a != b || a == c {
			t.Errorf("names not stable per lease and distinct across leases: %s %s %s", a, b, c)
		}
		if len(a) > tt.max || !strings.HasPrefix(a, tt.wantPrefix) || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("UserName(%q, %q) = %q", tt.prefix, tt.role, a)
		}
	}
}

func TestPasswordIsLongRandomAndSafe(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := Password(40)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 40 || checkSafe("p", p) != nil || seen[p] {
			t.Fatalf("password %d chars, safe %v, repeated %v", len(p), checkSafe("p", p) == nil, seen[p])
		}
		seen[p] = true
	}
	if p, _ := Password(8); len(p) < 32 {
		t.Errorf("short password %d", len(p))
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"two", "CREATE USER a; GRANT r TO a;", []string{"CREATE USER a", "GRANT r TO a"}},
		{"quoted semicolon", `SELECT 'a;b'; SELECT "c;d"; SELECT ` + "`e;f`", []string{`SELECT 'a;b'`, `SELECT "c;d"`, "SELECT `e;f`"}},
		{"doubled and escaped quotes", `SELECT 'it''s;\';'; SELECT 2`, []string{`SELECT 'it''s;\';'`, "SELECT 2"}},
		{"comments", "SELECT 1; -- a;b\n/* c;d */ SELECT 2; # e;f", []string{"SELECT 1", "-- a;b\n/* c;d */ SELECT 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.in, MySQL)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"SELECT 'open", "SELECT /* open"} {
		if _, err := Split(bad, MySQL); err == nil {
			t.Errorf("Split(%q) accepted an unterminated token", bad)
		}
	}
}

// FuzzSplit: the splitter never panics, and a literal made by Literal is
// never cut in two, whatever it holds.
func FuzzSplit(f *testing.F) {
	f.Add("x'; DROP USER root; --")
	f.Add(`a\'b;c`)
	f.Fuzz(func(t *testing.T, s string) {
		Split(s, MySQL)
		Split(s, Postgres)
		lit, err := Literal(MySQL, s)
		if err != nil {
			return
		}
		got, err := Split("SELECT "+lit+"; SELECT 2", MySQL)
		if err != nil || len(got) != 2 || got[0] != "SELECT "+lit {
			t.Fatalf("literal of %q split wrongly: %q %v", s, got, err)
		}
	})
}

// FuzzLiteral: a rendered attribute between quotes always leaves the quote
// closed where the template put it (checked with the MySQL splitter, which
// knows backslash escapes).
func FuzzLiteral(f *testing.F) {
	f.Add(`o'brien`)
	f.Add(`\`)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		tp, _ := Parse("f", `SELECT '{{.Principal.x}}'; SELECT "{{.Principal.x}}"; SELECT 3`, MySQL)
		out, err := tp.Execute(Data{Principal: map[string]Value{"x": {s}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Split(out, MySQL)
		if err != nil || len(got) != 3 || got[2] != "SELECT 3" {
			t.Fatalf("value %q escaped its quotes: %q %v", s, got, err)
		}
	})
}
