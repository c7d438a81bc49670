package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/jsonstr"
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
		// A response may hold a secret (a generated private key, a
		// database password): nothing of it stays in the pool.
		clear(b)
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
	b = jsonstr.Append(b, res.LeaseID)
	b = append(b, `,"expires_at":"`...)
	n0 := len(b)
	b = res.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	if !strictRFC3339(b[n0:]) {
		return b, false
	}
	b = append(b, `","renewable":`...)
	b = strconv.AppendBool(b, res.Renewable)
	b = append(b, `,"credential":`...)
	b = jsonstr.AppendStringMap(b, res.Credential)
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
