// Package sqltmpl holds what the SQL issuers (postgres, mysql) share:
// statement templates whose values are escaped for SQL, user names derived
// from lease ids, random passwords, and a quote-aware statement splitter.
package sqltmpl

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// Dialect says how a server quotes literals and identifiers.
type Dialect int

const (
	// Postgres quotes literals with ' (doubled inside) and identifiers with ".
	Postgres Dialect = iota
	// MySQL quotes literals with ' (doubled, backslash escaped) and
	// identifiers with `.
	MySQL
)

// Value is an untrusted string (a principal attribute) as a template sees
// it. Printed bare it is escaped for any quoted context — every quote and
// backslash character doubled — so it cannot end the literal or identifier
// it sits in; `literal` and `ident` render it as a complete quoted token.
// Bare values outside quotes are not safe: templates must quote them.
type Value struct {
	s string
}

// String renders the value escaped for use between quotes.
func (v Value) String() string {
	var b strings.Builder
	for _, r := range v.s {
		switch r {
		case '\'', '"', '`', '\\':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Raw is the unescaped value.
func (v Value) Raw() string { return v.s }

// Data is what a template sees. Name, Password, Expiration, LeaseID and
// Role contain only characters that are safe in any SQL context, by
// construction; Principal and Human map attribute names to Values.
type Data struct {
	Name       string
	Password   string
	Expiration string
	LeaseID    string
	Role       string
	Principal  map[string]Value
	Human      map[string]Value
}

// Template is one parsed statement template.
type Template struct {
	t       *template.Template
	dialect Dialect
	// dollar is set when the text has a PostgreSQL dollar quote ($$ or
	// $tag$): no escaping works inside one, so no attribute may hold a '$'.
	dollar bool
}

// dollarQuote matches a PostgreSQL dollar-quote delimiter.
var dollarQuote = regexp.MustCompile(`\$[A-Za-z_]*\$`)

// Parse compiles a statement template for a dialect. A reference to a
// missing key is an error at execution (missingkey=error), never an empty
// string in the SQL.
func Parse(name, text string, d Dialect) (*Template, error) {
	funcs := template.FuncMap{
		"literal": func(v any) (string, error) { return Literal(d, str(v)) },
		"ident":   func(v any) (string, error) { return Ident(d, str(v)) },
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("sqltmpl: parse %s: %w", name, err)
	}
	return &Template{t: t, dialect: d, dollar: d == Postgres && dollarQuote.MatchString(text)}, nil
}

// Execute renders the template. Errors are safe to show: they name the
// template and the missing key, never a value.
func (t *Template) Execute(d Data) (string, error) {
	if err := checkSafe("name", d.Name); err != nil {
		return "", err
	}
	if err := checkSafe("password", d.Password); err != nil {
		return "", errors.New("sqltmpl: password contains unsafe characters")
	}
	if err := checkSafe("lease id", d.LeaseID); err != nil {
		return "", err
	}
	if t.dollar {
		for _, m := range []map[string]Value{d.Principal, d.Human} {
			for k, v := range m {
				if strings.Contains(v.s, "$") {
					return "", fmt.Errorf("sqltmpl: attribute %q contains '$', which cannot be made safe in a template with a dollar-quoted body", k)
				}
			}
		}
	}
	var b bytes.Buffer
	if err := t.t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("sqltmpl: %w", err)
	}
	return b.String(), nil
}

func str(v any) string {
	switch x := v.(type) {
	case Value:
		return x.s
	case string:
		return x
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(v)
	}
}

// safeChar is the set that needs no quoting care in any SQL context we
// render into: letters, digits and a few punctuation marks (no quotes,
// backslash, semicolon or whitespace).
func safeChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '-' || r == '.' || r == ':' || r == '+'
}

func checkSafe(what, s string) error {
	for _, r := range s {
		if !safeChar(r) {
			return fmt.Errorf("sqltmpl: %s %q contains a character outside [A-Za-z0-9_.:+-]", what, s)
		}
	}
	return nil
}

// Literal quotes s as a string literal. NUL bytes are refused: PostgreSQL
// cannot store them and MySQL would truncate at them.
func Literal(d Dialect, s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", errors.New("sqltmpl: value contains a NUL byte")
	}
	switch d {
	case MySQL:
		// Doubling both ' and \ is safe whether or not NO_BACKSLASH_ESCAPES
		// is set: in that mode a \\ reads as two backslashes, never as an
		// escape of the closing quote.
		r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
		return "'" + r.Replace(s) + "'", nil
	default:
		if strings.ContainsRune(s, '\\') {
			// E'' strings treat backslash the same way regardless of
			// standard_conforming_strings.
			r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
			return "E'" + r.Replace(s) + "'", nil
		}
		return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
	}
}

// Ident quotes s as an identifier.
func Ident(d Dialect, s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", errors.New("sqltmpl: identifier contains a NUL byte")
	}
	if s == "" {
		return "", errors.New("sqltmpl: empty identifier")
	}
	if d == MySQL {
		return "`" + strings.ReplaceAll(s, "`", "``") + "`", nil
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// Attributes turns a principal into the map a template sees: every
// attribute plus provider, kind, subject and issuer. Lists are joined with
// commas; other values are printed with fmt. A nil principal gives an empty
// map, so referencing .Human.x without a human is a missing-key error.
func Attributes(p *core.Principal) map[string]Value {
	m := map[string]Value{}
	if p == nil {
		return m
	}
	for k, v := range p.Map() {
		switch x := v.(type) {
		case string:
			m[k] = Value{x}
		case []string:
			m[k] = Value{strings.Join(x, ",")}
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			m[k] = Value{strings.Join(parts, ",")}
		default:
			m[k] = Value{fmt.Sprint(x)}
		}
	}
	return m
}

// UserName derives a user name from a lease id: prefix, the role (made
// safe), and a hash of the lease id, lowercase [a-z0-9_] and at most max
// bytes. The same lease id and role always give the same name, so a lease
// left pending by a crash can be revoked without the issuer's stored data.
// hashLen characters of base32 (5 bits each) make names unique; at 16 that
// is 80 bits.
func UserName(prefix, role, leaseID string, max, hashLen int) (string, error) {
	sum := sha256.Sum256([]byte(leaseID))
	h := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:hashLen]
	p := sanitize(prefix)
	r := sanitize(role)
	room := max - len(p) - len(h) - 2
	if room < 1 {
		return "", fmt.Errorf("sqltmpl: prefix %q leaves no room for the role in a %d-byte name", prefix, max)
	}
	if len(r) > room {
		r = r[:room]
	}
	if r == "" {
		r = "r"
	}
	if p == "" {
		return r + "_" + h, nil
	}
	return p + "_" + r + "_" + h, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_")
}

const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Password returns n random characters from [A-Za-z0-9] (about 5.95 bits
// each) drawn from crypto/rand without modulo bias. Only letters and
// digits, so it is safe inside any quotes and in a URL.
func Password(n int) (string, error) {
	if n < 32 {
		n = 32
	}
	max := big.NewInt(int64(len(passwordAlphabet)))
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("sqltmpl: password: %w", err)
		}
		b[i] = passwordAlphabet[x.Int64()]
	}
	return string(b), nil
}

// Expiration formats t for a SQL timestamp literal in UTC.
func Expiration(t time.Time, d Dialect) string {
	if d == MySQL {
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// RoleNames returns the sorted keys of a role map.
func RoleNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
