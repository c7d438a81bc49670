package scan

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
)

var (
	awsIDRe     = regexp.MustCompile(`\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`)
	awsSecretRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)
)

// awsPairSpan is how far from an access key id its secret key is looked for.
const awsPairSpan = 600

// findAWS reports access key ids and, when a 40-character secret key with
// the right character mix sits nearby, the secret key too (both high).
func findAWS(s *fileScan, r *rule, hits []int) {
	secretRule := &rule{id: "aws-secret-access-key", desc: "AWS secret access key (next to its access key id)",
		priority: 3, remediation: remAWS}
	s.eachWindow(&rule{back: 0, fwd: 40}, hits, func(lo, hi int) {
		for _, m := range awsIDRe.FindAllSubmatchIndex(s.data[lo:hi], -1) {
			a, b := lo+m[2], lo+m[3]
			id := s.data[a:b]
			if isPlaceholder(id) {
				continue
			}
			plo, phi := a-awsPairSpan, b+awsPairSpan
			if plo < 0 {
				plo = 0
			}
			if phi > len(s.data) {
				phi = len(s.data)
			}
			paired := false
			for _, sm := range awsSecretRe.FindAllSubmatchIndex(s.data[plo:phi], -1) {
				sa, sb := plo+sm[2], plo+sm[3]
				sec := s.data[sa:sb]
				if looksRandom(sec, 4.0) && !isPlaceholder(sec) {
					paired = true
					s.emit(candidate{rule: secretRule, start: sa, end: sb, secret: sec, high: true})
				}
			}
			s.emit(candidate{rule: r, start: a, end: b, secret: id, high: paired})
		}
	})
}

var pemLineTail = regexp.MustCompile("(?:[\"'`]\\s*[+,;)]*\\s*|\\\\)$")

var pemBeginRe = regexp.MustCompile(`-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----`)

// maxPEM bounds how far the END line of a key is looked for.
const maxPEM = 16 << 10

// findPEM reports private keys that parse. Keys embedded in JSON or code
// strings ("\n" escapes) or indented in YAML are normalised first.
func findPEM(s *fileScan, r *rule, hits []int) {
	for _, p := range hits {
		head := s.data[p:min(len(s.data), p+64)]
		m := pemBeginRe.FindSubmatchIndex(head)
		if m == nil || m[0] != 0 {
			continue
		}
		kind := string(head[m[2]:m[3]])
		endMark := []byte("-----END " + kind + "PRIVATE KEY-----")
		rest := s.data[p:min(len(s.data), p+maxPEM)]
		e := bytes.Index(rest, endMark)
		if e < 0 {
			continue
		}
		raw := rest[:e+len(endMark)]
		block := normalizePEM(raw)
		ok, full := parsePrivateKeyPEM(block)
		if !ok {
			continue
		}
		rem := remX509
		if kind == "OPENSSH " {
			rem = remSSH
		}
		body := pemBody(block)
		s.emit(candidate{rule: r, start: p, end: p + len(raw), secret: body, high: full, rem: &rem})
	}
}

// normalizePEM undoes the common ways a PEM block is embedded in text:
// literal \n escapes, indentation, quotes and concatenation at line ends.
func normalizePEM(raw []byte) []byte {
	t := string(raw)
	t = strings.ReplaceAll(t, `\r\n`, "\n")
	t = strings.ReplaceAll(t, `\n`, "\n")
	t = strings.ReplaceAll(t, "\r", "")
	var b strings.Builder
	for _, line := range strings.Split(t, "\n") {
		// Trim indentation and string-literal syntax around a line, but
		// never a bare '+' or '/', which are base64 characters.
		line = strings.Trim(line, " \t")
		line = strings.TrimLeft(line, "\"'`")
		line = pemLineTail.ReplaceAllString(line, "")
		if line == "" {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// pemBody returns the base64 lines of a block, the part that is secret.
func pemBody(block []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(block, []byte{'\n'}) {
		if bytes.HasPrefix(l, []byte("-----")) || bytes.Contains(l, []byte(": ")) {
			continue
		}
		out = append(out, l...)
	}
	return out
}

// findGCP parses the JSON object around a "service_account" hit and reports
// its private_key when the key parses.
func findGCP(s *fileScan, r *rule, hits []int) {
	seen := map[int]bool{}
	for _, p := range hits {
		// Try the nearest few '{' before the hit as the object start.
		lo := max(0, p-8192)
		tries := 0
		for i := p; i >= lo && tries < 6; i-- {
			if s.data[i] != '{' || seen[i] {
				continue
			}
			tries++
			dec := json.NewDecoder(bytes.NewReader(s.data[i:]))
			var sa serviceAccount
			if dec.Decode(&sa) != nil || sa.Type != "service_account" || sa.PrivateKey == "" {
				continue
			}
			seen[i] = true
			ok, _ := parsePrivateKeyPEM([]byte(sa.PrivateKey))
			if !ok {
				break
			}
			end := i + int(dec.InputOffset())
			k := bytes.Index(s.data[i:end], []byte(`"private_key"`))
			if k < 0 {
				break
			}
			s.emit(candidate{rule: r, start: i + k, end: end, secret: pemBody(normalizePEM([]byte(sa.PrivateKey))), high: true})
			break
		}
	}
}

var genericKeywords = []string{"api_key", "apikey", "api-key", "secret", "password", "passwd", "pwd", "token", "access_key", "accesskey", "private_key", "credential"}

// codeLike matches a value that is an expression, not a literal:
// config.Token, os.Getenv(...), a type name.
var codeLike = regexp.MustCompile(`^(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Za-z_]+)$|[(){}\[\]]`)

// findGeneric reports literal values assigned to secret-named keys:
// key = "v", key: v, "key": "v", key := `v`, key => 'v'. It parses around
// each keyword hit by hand; a regex with a free-floating key name would
// backtrack over every line that mentions "token".
func findGeneric(s *fileScan, r *rule, hits []int) {
	sort.Ints(hits)
	lastEnd := -1
	for _, p := range hits {
		if p < lastEnd {
			continue
		}
		c, ok := parseAssignment(s.data, p)
		if !ok || !genericValueOK(s.data[c.keyStart:c.keyEnd], s.data[c.valStart:c.valEnd], c.quoted) {
			continue
		}
		lastEnd = c.valEnd
		s.emit(candidate{rule: r, start: c.valStart, end: c.valEnd, secret: s.data[c.valStart:c.valEnd]})
	}
}

type assignment struct {
	keyStart, keyEnd, valStart, valEnd int
	quoted                             bool
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// parseAssignment parses the assignment whose key contains offset p.
func parseAssignment(d []byte, p int) (assignment, bool) {
	var a assignment
	i := p
	for i > 0 && p-i < 80 && isKeyByte(d[i-1]) {
		i--
	}
	a.keyStart = i
	j := p
	for j < len(d) && j-p < 80 && isKeyByte(d[j]) {
		j++
	}
	a.keyEnd = j
	if j < len(d) && (d[j] == '"' || d[j] == '\'') {
		j++
	}
	for j < len(d) && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	switch {
	case j+1 < len(d) && d[j] == ':' && d[j+1] == '=', j+1 < len(d) && d[j] == '=' && d[j+1] == '>':
		j += 2
	case j < len(d) && (d[j] == '=' || d[j] == ':'):
		j++
	default:
		return a, false
	}
	if j < len(d) && d[j] == '=' { // ==, a comparison
		return a, false
	}
	for j < len(d) && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	var quote byte
	if j < len(d) && (d[j] == '"' || d[j] == '\'' || d[j] == '`') {
		quote = d[j]
		j++
	}
	a.valStart = j
	for j < len(d) && j-a.valStart <= 200 {
		c := d[j]
		if c == '\n' || c == '\r' || (quote != 0 && c == quote) || (quote == 0 && (c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '`')) {
			break
		}
		if quote != 0 && (c == ' ' || c == '\t') {
			return a, false // prose or an expression, not a credential
		}
		j++
	}
	a.valEnd = j
	if quote != 0 {
		if j >= len(d) || d[j] != quote {
			return a, false
		}
		a.quoted = true
	} else {
		for a.valEnd > a.valStart && (d[a.valEnd-1] == ',' || d[a.valEnd-1] == ';') {
			a.valEnd--
		}
	}
	return a, a.valEnd-a.valStart >= 8
}

// nonSecretKeySuffixes mark keys whose values name or point at a secret
// rather than hold it.
// They are compared with '_' and '-' removed, so camelCase keys match too.
var nonSecretKeySuffixes = []string{"file", "path", "env", "name", "url", "uri", "type", "id", "length", "len",
	"header", "field", "policy", "endpoint", "ttl", "expiry", "expires", "expiresat", "count", "mode", "ref", "hash", "format", "prefix", "dir", "key_id", "keyid"}

// nonSecretKey reports whether a key name points at or describes a secret
// rather than holding one.
func nonSecretKey(k string) bool {
	k = strings.ToLower(strings.NewReplacer("_", "", "-", "", ".", "").Replace(k))
	for _, suf := range nonSecretKeySuffixes {
		if strings.HasSuffix(k, suf) {
			return true
		}
	}
	return false
}

func genericValueOK(key, v []byte, quoted bool) bool {
	if nonSecretKey(string(key)) {
		return false
	}
	if len(v) < 8 || isPlaceholder(v) || bytes.Contains(v, []byte("://")) {
		return false
	}
	if !quoted && codeLike.Match(v) {
		return false
	}
	if codeLike.Match(v) && !hasDigitOrSymbol(v) {
		return false
	}
	min := 3.0
	if !quoted {
		min = 3.2
	}
	return entropy(v) >= min
}

func hasDigitOrSymbol(v []byte) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.') {
			return true
		}
	}
	return false
}
