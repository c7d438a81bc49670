package server

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stint-dev/stint/internal/broker"
)

// The response of POST /v1/credentials without reflection: appended byte
// for byte as json.NewEncoder(w).Encode writes it; credjson_test.go (a
// table and a fuzz test) holds it to encoding/json. The request is still
// decoded by encoding/json: input at the edge stays with the standard
// parser.

// jsonBufPool holds response buffers (pointers, so that Put does not
// allocate).
var jsonBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledBuf bounds the buffers kept in jsonBufPool.
const maxPooledBuf = 64 << 10

func putJSONBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		jsonBufPool.Put(bp)
	}
}

// writeCredentialResult is writeJSON(w, code, *res) with Content-Length,
// in one Write.
func writeCredentialResult(w http.ResponseWriter, code int, res *broker.CredentialResult) {
	bp := jsonBufPool.Get().(*[]byte)
	b, ok := appendCredentialResult((*bp)[:0], res)
	if !ok {
		putJSONBuf(bp, b)
		writeJSON(w, code, *res)
		return
	}
	// Header.Set's values, in one allocation; each capped at its length,
	// so an Add to one cannot write over the next.
	v := make([]string, 3)
	v[0], v[1], v[2] = "application/json", "no-store", strconv.Itoa(len(b))
	h := w.Header()
	h["Content-Type"], h["Cache-Control"], h["Content-Length"] = v[0:1:1], v[1:2:2], v[2:3:3]
	w.WriteHeader(code)
	_, _ = w.Write(b)
	putJSONBuf(bp, b)
}

// appendCredentialResult appends what json.NewEncoder(w).Encode(*res)
// writes, final newline included. It reports false, with b's content
// unspecified, where encoding/json fails: an ExpiresAt that RFC 3339
// cannot represent.
func appendCredentialResult(b []byte, res *broker.CredentialResult) ([]byte, bool) {
	b = append(b, `{"lease_id":`...)
	b = appendJSONString(b, res.LeaseID)
	b = append(b, `,"expires_at":"`...)
	n0 := len(b)
	b = res.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	if !strictRFC3339(b[n0:]) {
		return b, false
	}
	b = append(b, `","renewable":`...)
	b = strconv.AppendBool(b, res.Renewable)
	b = append(b, `,"credential":`...)
	if res.Credential == nil {
		b = append(b, "null"...)
	} else {
		var arr [16]string
		keys := arr[:0]
		for k := range res.Credential {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json: strings.Compare of the unescaped keys
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, res.Credential[k])
		}
		b = append(b, '}')
	}
	return append(b, "}\n"...), true
}

// strictRFC3339 reports whether f, time.Time.AppendFormat's RFC3339Nano
// output, is valid RFC 3339: the checks of time.Time.MarshalJSON
// (appendStrictRFC3339), which encoding/json calls.
func strictRFC3339(f []byte) bool {
	num2 := func(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }
	switch {
	case f[len("9999")] != '-': // year must be exactly 4 digits wide
		return false
	case f[len(f)-1] != 'Z':
		c := f[len(f)-len("Z07:00")]
		if ('0' <= c && c <= '9') || num2(f[len(f)-len("07:00"):]) >= 24 {
			return false // timezone hour outside of range [0,23]
		}
	}
	return true
}

// jsonPlain marks the ASCII bytes encoding/json copies as they are with
// HTML escaping on (its htmlSafeSet): all but controls, '"', '\\', '<',
// '>' and '&'.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// skipPlain skips jsonPlain bytes from s[i] eight at a time and returns
// where it stopped: at the start of a word with a byte below 0x20 or from
// 0x80, or one of '"', '&', '<', '>', '\\', or where fewer than eight bytes
// are left ('"' and '&' differ only in bit 2: with it set both
// are '&' and nothing else is; '<' and '>' likewise in bit 1). Each term
// finds the lowest matching byte of the word, if any (a borrow comes only
// from a lower byte that matches too), which is all an "any" test needs.
func skipPlain(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		qa := (x | 0x04*ones) ^ '&'*ones
		lg := (x | 0x02*ones) ^ '>'*ones
		bs := x ^ '\\'*ones
		bad := x | (x-0x20*ones)&^x | (qa-ones)&^qa | (lg-ones)&^lg | (bs-ones)&^bs
		if bad&highs != 0 {
			break
		}
	}
	return i
}

// appendJSONString is encoding/json's appendString with escapeHTML: invalid
// UTF-8 becomes invalidUTF8, U+2028 and U+2029 are escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = skipPlain(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, invalidUTF8...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
