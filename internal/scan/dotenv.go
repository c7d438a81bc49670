package scan

import (
	"bytes"
	"strings"
)

// dotenvEntry is one KEY=VALUE line of a .env file.
type dotenvEntry struct {
	key      string
	value    []byte
	valueOff int // offset of value in the file
	quoted   bool
}

// parseDotenv parses the KEY=VALUE lines of a .env file: optional
// "export ", single or double quotes, # comments after unquoted values.
// Lines it does not understand are skipped, never an error: the input is
// untrusted and a scanner must keep going.
func parseDotenv(data []byte) []dotenvEntry {
	var out []dotenvEntry
	off := 0
	for off < len(data) {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		line := data[off:end]
		lineOff := off
		off = end + 1
		trim := bytes.TrimLeft(line, " \t")
		lead := len(line) - len(trim)
		if len(trim) == 0 || trim[0] == '#' {
			continue
		}
		if bytes.HasPrefix(trim, []byte("export ")) {
			trim = trim[7:]
			lead += 7
		}
		eq := bytes.IndexByte(trim, '=')
		if eq <= 0 {
			continue
		}
		key := strings.TrimSpace(string(trim[:eq]))
		if strings.ContainsAny(key, " \t\"'") {
			continue
		}
		v := trim[eq+1:]
		vs := lead + eq + 1
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
			vs++
		}
		quoted := false
		if len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
			if c := bytes.LastIndexByte(v, v[0]); c > 0 {
				v = v[1:c]
				vs++
				quoted = true
			}
		}
		if !quoted {
			if h := bytes.Index(v, []byte(" #")); h >= 0 {
				v = v[:h]
			}
			v = bytes.TrimRight(v, " \t\r")
		}
		out = append(out, dotenvEntry{key: key, value: v, valueOff: lineOff + vs, quoted: quoted})
	}
	return out
}

var dotenvRule = &rule{id: "dotenv-secret", desc: "secret-named variable in a .env file",
	priority: 1, remediation: remGeneric}

// secretName reports whether a variable or key name says it holds a secret.
func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "private_key", "access_key", "credential", "auth"} {
		if strings.Contains(k, w) {
			return !nonSecretKey(k)
		}
	}
	return false
}

// findDotenv reports secret-named variables with literal values.
func findDotenv(s *fileScan) {
	for _, e := range parseDotenv(s.data) {
		if !secretName(e.key) || len(e.value) < 6 || isPlaceholder(e.value) || bytes.Contains(e.value, []byte("://")) {
			continue
		}
		if entropy(e.value) < 2.5 {
			continue
		}
		s.emit(candidate{rule: dotenvRule, start: e.valueOff, end: e.valueOff + len(e.value), secret: e.value})
	}
}
