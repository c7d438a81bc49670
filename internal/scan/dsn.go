package scan

import "bytes"

var dsnKeywords = []string{"postgres://", "postgresql://", "mysql://", "mongodb://", "mongodb+srv://",
	"redis://", "rediss://", "amqp://", "amqps://", "@tcp(", "@unix("}

// dsnCred is the credential part of a database URL or DSN.
type dsnCred struct {
	scheme   string
	user     []byte
	password []byte
	passOff  int // offset of password within the parsed input
}

// hostLike reports whether h is a host list: host[:port][,host[:port]…].
func hostLike(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']' || c == ',' || c == '%') {
			return false
		}
	}
	return true
}

// parseDBURL parses scheme://user:password@host/… where the password may
// contain any punctuation, including '@', '/', ':' and '#': the host is the
// part after the LAST '@' that is followed by something host-like. When the
// userinfo has no password, a password= query parameter is used instead.
func parseDBURL(u []byte) (dsnCred, bool) {
	i := bytes.Index(u, []byte("://"))
	if i <= 0 {
		return dsnCred{}, false
	}
	c := dsnCred{scheme: string(u[:i])}
	rest := u[i+3:]
	for at := bytes.LastIndexByte(rest, '@'); at > 0; at = bytes.LastIndexByte(rest[:at], '@') {
		h := rest[at+1:]
		if e := bytes.IndexAny(h, "/?#"); e >= 0 {
			h = h[:e]
		}
		if !hostLike(h) {
			continue
		}
		ui := rest[:at]
		colon := bytes.IndexByte(ui, ':')
		if colon < 0 {
			break
		}
		c.user, c.password = ui[:colon], ui[colon+1:]
		c.passOff = i + 3 + colon + 1
		return c, len(c.password) > 0
	}
	// No userinfo password: look for password= in the query (JDBC style).
	if q := bytes.IndexByte(rest, '?'); q >= 0 {
		off := q + 1
		for off < len(rest) {
			kv := rest[off:]
			if amp := bytes.IndexByte(kv, '&'); amp >= 0 {
				kv = kv[:amp]
			}
			k, v, ok := bytes.Cut(kv, []byte("="))
			if ok && (string(k) == "password" || string(k) == "pass") && len(v) > 0 {
				c.password = v
				c.passOff = i + 3 + off + len(k) + 1
				return c, true
			}
			off += len(kv) + 1
		}
	}
	return c, false
}

// parseGoMySQLDSN parses go-sql-driver style user:pass@tcp(host)/db, given
// the token that ends just before "@tcp(" or "@unix(".
func parseGoMySQLDSN(tok []byte) (dsnCred, bool) {
	if eq := bytes.IndexByte(tok, '='); eq >= 0 {
		if colon := bytes.IndexByte(tok, ':'); colon < 0 || eq < colon {
			tok = tok[eq+1:]
		}
	}
	colon := bytes.IndexByte(tok, ':')
	if colon <= 0 || colon == len(tok)-1 {
		return dsnCred{}, false
	}
	return dsnCred{scheme: "mysql", user: tok[:colon], password: tok[colon+1:], passOff: colon + 1}, true
}

// urlEnd finds where a URL that starts at p ends: at whitespace, or at the
// closing quote when the URL was opened by one.
func urlEnd(data []byte, p int) int {
	var closer byte
	if p > 0 {
		switch data[p-1] {
		case '"', '\'', '`':
			closer = data[p-1]
		case '<':
			closer = '>'
		case '(':
			closer = ')'
		}
	}
	for i := p; i < len(data) && i < p+2048; i++ {
		c := data[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || (closer != 0 && c == closer) {
			return i
		}
	}
	return min(len(data), p+2048)
}

// findDSN reports database URLs and DSNs that carry a password.
func findDSN(s *fileScan, r *rule, hits []int) {
	for _, p := range hits {
		var c dsnCred
		var ok bool
		var base int
		if s.data[p] == '@' {
			// go-sql-driver DSN: walk back to the start of the token.
			ts := p
			for ts > 0 && ts > p-512 {
				b := s.data[ts-1]
				if b == ' ' || b == '\t' || b == '\n' || b == '"' || b == '\'' || b == '`' {
					break
				}
				ts--
			}
			c, ok = parseGoMySQLDSN(s.data[ts:p])
			base = ts
			if ok {
				base += bytes.Index(s.data[ts:p], c.user) // after any KEY= prefix
			}
		} else {
			c, ok = parseDBURL(s.data[p:urlEnd(s.data, p)])
			base = p
		}
		if !ok || isPlaceholder(c.password) || bytes.Equal(c.password, c.user) {
			continue
		}
		rem := dsnRemediation(c.scheme)
		a := base + c.passOff
		s.emit(candidate{rule: r, start: a, end: a + len(c.password), secret: c.password, high: true, rem: &rem})
	}
}

func dsnRemediation(scheme string) Remediation {
	switch scheme {
	case "postgres", "postgresql":
		return remPostgres
	case "mysql":
		return remMySQL
	}
	return remNone
}
