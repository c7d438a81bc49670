package audit

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/stint-dev/stint/internal/jsonstr"
)

// errSlowPath makes appendEvent give up on a value it does not encode
// itself; canonicalJSON then uses encoding/json for the whole event.
var errSlowPath = errors.New("audit: value needs encoding/json")

// appendEvent appends e's canonical encoding: byte for byte what
// encoding/json's Encoder writes for it (HTML-safe escaping, sorted map
// keys, omitempty as tagged), without the trailing newline and without
// reflection. It is the hash chain's input, so FuzzAppendEventMatchesEncodingJSON
// holds it to encoding/json; values it does not handle (anything but
// strings, bools, nil, json.Number, integers, floats, string slices and
// nested maps and slices of those) return errSlowPath.
//
// memo, when not nil, lends the encoding of an actor an earlier event of
// the same call already carried (see actorMemo).
func appendEvent(b []byte, e *Event, memo *actorMemo) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":`...)
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, errSlowPath // encoding/json reports the error
	}
	b = append(b, '"')
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "id", e.ID, false)
	b = appendField(b, "prev_hash", e.PrevHash, false)
	b = appendField(b, "hash", e.Hash, false)
	b = appendField(b, "type", e.Type, false)
	b = appendField(b, "request_id", e.RequestID, true)
	b = appendField(b, "source", e.Source, true)
	var err error
	if e.Principal != nil {
		b = append(b, `,"principal":`...)
		if b, err = memo.appendActor(b, e.Principal); err != nil {
			return nil, err
		}
	}
	if e.Human != nil {
		b = append(b, `,"human":`...)
		if b, err = memo.appendActor(b, e.Human); err != nil {
			return nil, err
		}
	}
	b = appendField(b, "target", e.Target, true)
	b = appendField(b, "role", e.Role, true)
	b = appendField(b, "lease_id", e.LeaseID, true)
	b = appendField(b, "rule", e.Rule, true)
	b = appendField(b, "reason", e.Reason, true)
	b = appendField(b, "outcome", e.Outcome, false)
	b = appendField(b, "error", e.Error, true)
	if len(e.Details) > 0 {
		b = append(b, `,"details":`...)
		if b, err = appendMap(b, e.Details); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// actorMemo lets the events of one call share the encoding of the actor
// they carry: a credential request records three events whose principals
// are distinct *Actor values built from one principal, with one
// Attributes map, and that map (sorted keys, escaped strings) is most of
// an actor's encoding. An actor counts as seen when its strings are equal
// and its Attributes is the very same map (or both are nil); the map's
// content is never compared, so a map with equal content is encoded anew.
//
// A memo lives for one call and relies on the actors' maps (and what they
// hold) not changing during it, as every encoding of the event does. Its
// zero value is ready; a nil *actorMemo encodes every actor afresh.
type actorMemo struct {
	n    int
	seen [4]memoEntry // a request has one or two actors; later ones are encoded each time
}

type memoEntry struct {
	actor Actor // holds the map, so its address is not reused while the memo lives
	attrs unsafe.Pointer
	enc   []byte // never written to after it is taken (see appendActor)
}

// appendActor appends a's encoding, from the memo when a is one it saw.
// The bytes it remembers are a slice of b as it returns it: the caller
// must only ever append to b (or drop it), never rewrite or truncate and
// refill it, while the memo lives.
func (m *actorMemo) appendActor(b []byte, a *Actor) ([]byte, error) {
	if m == nil {
		return appendActor(b, a)
	}
	attrs := mapID(a.Attributes)
	for i := range m.n {
		s := &m.seen[i]
		if s.attrs == attrs && s.actor.Provider == a.Provider && s.actor.Kind == a.Kind &&
			s.actor.Subject == a.Subject && s.actor.TokenID == a.TokenID {
			return append(b, s.enc...), nil
		}
	}
	start := len(b)
	b, err := appendActor(b, a)
	if err != nil || m.n == len(m.seen) {
		return b, err
	}
	m.seen[m.n] = memoEntry{actor: *a, attrs: attrs, enc: b[start:len(b):len(b)]}
	m.n++
	return b, nil
}

// mapID is m's identity: the address of its header, nil for a nil map.
func mapID(m map[string]any) unsafe.Pointer {
	return reflect.ValueOf(m).UnsafePointer()
}

func appendActor(b []byte, a *Actor) ([]byte, error) {
	b = append(b, '{')
	n := len(b)
	b = appendField(b, "provider", a.Provider, true)
	b = appendField(b, "kind", a.Kind, true)
	b = appendField(b, "subject", a.Subject, true)
	if len(a.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		var err error
		if b, err = appendMap(b, a.Attributes); err != nil {
			return nil, err
		}
	}
	b = appendField(b, "token_id", a.TokenID, true)
	if len(b) > n {
		b = append(b[:n], b[n+1:]...) // the first field's leading comma
	}
	return append(b, '}'), nil
}

// appendField appends ,"key":"value" (nothing for an empty value when
// omitEmpty).
func appendField(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return jsonstr.Append(b, value)
}

func appendMap(b []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return jsonstr.Append(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case json.Number:
		if v == "" {
			return append(b, '0'), nil
		}
		if !isJSONNumber(string(v)) {
			return nil, errSlowPath
		}
		return append(b, v...), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float64:
		return appendFloat(b, v)
	case []string:
		return jsonstr.AppendStrings(b, v), nil
	case []any:
		return appendArray(b, v, appendValue)
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		return appendMap(b, v)
	}
	return nil, errSlowPath
}

// appendArray writes a JSON array of vs (null for a nil slice, as
// encoding/json does), each element by elem.
func appendArray[T any](b []byte, vs []T, elem func([]byte, T) ([]byte, error)) ([]byte, error) {
	if vs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = elem(b, v); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendFloat formats like encoding/json: shortest representation, 'e'
// notation outside [1e-6, 1e21), and a two-digit exponent trimmed.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errSlowPath
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b, nil
}

// isJSONNumber reports whether s is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
