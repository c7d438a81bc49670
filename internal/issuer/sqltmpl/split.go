package sqltmpl

import (
	"errors"
	"strings"
)

// Split cuts a rendered script into statements at top-level semicolons,
// skipping those inside '…', "…" and `…` quotes (doubled quotes and, for
// MySQL, backslash escapes inside them) and inside -- , # and /* */
// comments. Empty statements are dropped. An unterminated quote or comment
// is an error: running the remainder could do something nobody wrote.
//
// The MySQL issuer runs statements one at a time (the driver's
// multiStatements mode reports later errors unreliably); PostgreSQL sends
// the whole script at once and does not need this.
func Split(script string, d Dialect) ([]string, error) {
	var out []string
	start := 0
	i := 0
	n := len(script)
	for i < n {
		c := script[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			closed := false
			for j < n {
				if d == MySQL && script[j] == '\\' && c != '`' {
					j += 2
					continue
				}
				if script[j] == c {
					if j+1 < n && script[j+1] == c {
						j += 2
						continue
					}
					closed = true
					break
				}
				j++
			}
			if !closed {
				return nil, errors.New("sqltmpl: unterminated quote in statement")
			}
			i = j + 1
		case c == '-' && i+1 < n && script[i+1] == '-', c == '#' && d == MySQL:
			j := strings.IndexByte(script[i:], '\n')
			if j < 0 {
				i = n
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < n && script[i+1] == '*':
			j := strings.Index(script[i+2:], "*/")
			if j < 0 {
				return nil, errors.New("sqltmpl: unterminated comment in statement")
			}
			i += j + 4
		case c == ';':
			if s := strings.TrimSpace(script[start:i]); s != "" {
				out = append(out, s)
			}
			i++
			start = i
		default:
			i++
		}
	}
	if s := strings.TrimSpace(script[start:]); s != "" && !onlyComments(s, d) {
		out = append(out, s)
	}
	return out, nil
}

// onlyComments reports whether a trailing fragment holds nothing but
// comments, which a server would reject as an empty query.
func onlyComments(s string, d Dialect) bool {
	for s != "" {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			return true
		case strings.HasPrefix(s, "--") || d == MySQL && strings.HasPrefix(s, "#"):
			j := strings.IndexByte(s, '\n')
			if j < 0 {
				return true
			}
			s = s[j+1:]
		case strings.HasPrefix(s, "/*"):
			j := strings.Index(s, "*/")
			if j < 0 {
				return false
			}
			s = s[j+2:]
		default:
			return false
		}
	}
	return true
}
