package agent

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode"

	"github.com/stint-dev/stint/client"
)

// Credential kinds, inferred from a credential's fields (the credential
// response does not name its target's type).
const (
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
	KindJWT      = "jwt"
	KindAWS      = "aws"
	KindGeneric  = "generic"
)

// Kind infers what a credential is from its fields.
func Kind(c map[string]string) string {
	if c["access_key_id"] != "" && c["secret_access_key"] != "" {
		return KindAWS
	}
	if dsn := c["dsn"]; dsn != "" {
		if u, err := url.Parse(dsn); err == nil {
			switch u.Scheme {
			case "postgres", "postgresql":
				return KindPostgres
			case "mysql":
				return KindMySQL
			}
		}
		if strings.Contains(dsn, "@tcp(") {
			return KindMySQL
		}
	}
	if c["access_token"] != "" {
		return KindJWT
	}
	return KindGeneric
}

// conventional maps a kind's fields to the variables its tools read
// (libpq, the mysql client, the AWS SDKs, OAuth clients).
var conventional = map[string]map[string]string{
	KindPostgres: {"username": "PGUSER", "password": "PGPASSWORD", "host": "PGHOST", "port": "PGPORT", "database": "PGDATABASE", "dsn": "DATABASE_URL"},
	KindMySQL:    {"username": "MYSQL_USER", "password": "MYSQL_PWD", "host": "MYSQL_HOST", "port": "MYSQL_TCP_PORT", "database": "MYSQL_DATABASE", "dsn": "DATABASE_URL"},
	KindJWT:      {"access_token": "ACCESS_TOKEN"},
	KindAWS:      {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY", "session_token": "AWS_SESSION_TOKEN", "region": "AWS_REGION", "expiration": "AWS_CREDENTIAL_EXPIRATION"},
}

// ConventionalEnv returns the conventional variables of one credential
// (PG*, DATABASE_URL, AWS_*, ACCESS_TOKEN …), sorted by name.
func ConventionalEnv(c map[string]string) []string {
	m := conventional[Kind(c)]
	var out []string
	for field, v := range c {
		if name := m[field]; name != "" {
			out = append(out, name+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// EnvName turns a credential name into a variable-name part: upper case,
// anything but letters and digits replaced by "_".
func EnvName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(unicode.ToUpper(r))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Held is one credential held under a lease, with the name the user gave it.
type Held struct {
	Name   string
	Target string
	Role   string
	// Lease is the server's answer: lease id, expiry, the credential fields.
	Lease client.Credential
}

// EnvOverride sets variable Var to field Field of the credential named Name
// (`--env VAR=NAME.FIELD`).
type EnvOverride struct {
	Var, Name, Field string
}

// ParseEnvOverride parses "VAR=NAME.FIELD".
func ParseEnvOverride(s string) (EnvOverride, error) {
	v, ref, ok := strings.Cut(s, "=")
	if !ok || v == "" || strings.ContainsAny(v, " \t\n") {
		return EnvOverride{}, fmt.Errorf("exec: --env %q: want VAR=NAME.FIELD", s)
	}
	name, field, ok := strings.Cut(ref, ".")
	if !ok || name == "" || field == "" {
		return EnvOverride{}, fmt.Errorf("exec: --env %q: want VAR=NAME.FIELD", s)
	}
	return EnvOverride{Var: v, Name: name, Field: field}, nil
}

// Env computes the variables to add for a set of credentials:
//   - every field as STINT_<NAME>_<FIELD>, and STINT_<NAME>_LEASE_ID;
//   - for jwt credentials also STINT_TOKEN_<NAME>;
//   - the conventional names of a kind (PG*, DATABASE_URL, MYSQL_*,
//     ACCESS_TOKEN, AWS_*) when exactly one credential of that family
//     claims them, so two databases never silently overwrite each other;
//   - then the overrides, which win.
func Env(held []Held, overrides []EnvOverride) ([]string, error) {
	vars := map[string]string{}
	claims := map[string]int{}
	for _, h := range held {
		claims[family(Kind(h.Lease.Credential))]++
	}
	for _, h := range held {
		n := EnvName(h.Name)
		for f, v := range h.Lease.Credential {
			vars["STINT_"+n+"_"+EnvName(f)] = v
		}
		vars["STINT_"+n+"_LEASE_ID"] = h.Lease.LeaseID
		k := Kind(h.Lease.Credential)
		if k == KindJWT {
			vars["STINT_TOKEN_"+n] = h.Lease.Credential["access_token"]
		}
		if claims[family(k)] == 1 {
			for _, kv := range ConventionalEnv(h.Lease.Credential) {
				name, v, _ := strings.Cut(kv, "=")
				vars[name] = v
			}
		}
	}
	for _, o := range overrides {
		var found *Held
		for i := range held {
			if held[i].Name == o.Name {
				found = &held[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("exec: --env %s: no credential named %q", o.Var, o.Name)
		}
		v, ok := found.Lease.Credential[o.Field]
		if !ok {
			return nil, fmt.Errorf("exec: --env %s: credential %q has no field %q (has %s)", o.Var, o.Name, o.Field, strings.Join(fields(found.Lease.Credential), ", "))
		}
		vars[o.Var] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// family groups kinds that claim the same conventional variables
// (postgres and mysql both set DATABASE_URL).
func family(kind string) string {
	if kind == KindPostgres || kind == KindMySQL {
		return "sql"
	}
	return kind
}

func fields(c map[string]string) []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MergeEnv returns base with add applied: later values replace earlier
// ones with the same name.
func MergeEnv(base, add []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(add))
	for _, kv := range append(append([]string{}, base...), add...) {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[name]; ok {
			out[i] = kv
			continue
		}
		idx[name] = len(out)
		out = append(out, kv)
	}
	return out
}
