package policy

import "strings"

// safeError describes a CEL evaluation error without quoting input values,
// so reasons can go into logs and audit events even when a rule reads a
// request body. Messages known to carry only names from the rule or type
// names pass; the key of "no such key" passes only when the rule's own text
// contains it (a key computed from input might be a secret); anything else
// is reduced to its kind.
func safeError(err error, src string) string {
	msg := err.Error()
	if key, ok := strings.CutPrefix(msg, "no such key: "); ok {
		if namedIn(key, src) {
			return msg
		}
		return "no such key"
	}
	for _, p := range keepWhole {
		if strings.HasPrefix(msg, p) {
			return msg
		}
	}
	for _, p := range keepPrefix {
		if strings.HasPrefix(msg, p) {
			return p
		}
	}
	return "evaluation error (details withheld; use policy explain)"
}

// keepWhole are messages whose details are function or type names.
var keepWhole = []string{
	"no such overload",
	"no matching overload",
	"type conversion error",
	"unsupported type conversion",
	"operation cancelled",
	"division by zero",
	"modulus by zero",
	"integer overflow",
}

// keepPrefix are messages whose details may be input values.
var keepPrefix = []string{
	"index out of range",
	"index out of bounds",
	"unknown time zone",
	"no such attribute",
	"optional.none() dereference",
}

// namedIn reports whether src spells key as a field selection (.key) or a
// string literal ("key" or 'key'), which is what a rule does when it asks
// for a fixed key.
func namedIn(key, src string) bool {
	if key == "" {
		return false
	}
	if strings.Contains(src, `"`+key+`"`) || strings.Contains(src, "'"+key+"'") {
		return true
	}
	for rest := src; ; {
		i := strings.Index(rest, "."+key)
		if i < 0 {
			return false
		}
		rest = rest[i+1+len(key):]
		if rest == "" || !isIdentByte(rest[0]) {
			return true
		}
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
