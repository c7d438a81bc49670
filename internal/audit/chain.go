package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// GenesisHash is the PrevHash of the first event of a record (seq 1).
var GenesisHash = strings.Repeat("0", 64)

// The hash chain, stated so that a third party can verify a record without
// this code:
//
//   - Each event is stored as one line: the canonical JSON of the Event
//     followed by "\n".
//   - Canonical JSON is what Go's encoding/json (v1, default settings:
//     HTML-escaping on, no indentation) produces for the Event struct: fields
//     in struct order (seq, time, id, prev_hash, hash, type, request_id,
//     source, principal, human, target, role, lease_id, rule, reason,
//     outcome, error, details), omitempty fields left out, map keys (details,
//     attributes) sorted, time as RFC 3339 with nanoseconds in UTC. Numbers in
//     details are written as given and re-read verbatim (json.Number).
//   - Hash = lowercase hex of SHA-256 over the canonical JSON of the event
//     with "hash" set to "" (the key stays, as "hash":"").
//   - PrevHash = Hash of the event with Seq-1; for Seq 1 it is GenesisHash
//     (64 zeros). Seq increases by exactly one per line.
//
// A verifier re-encodes each parsed line and requires it to equal the line
// byte for byte, so a line with extra keys, duplicate keys or other spacing
// is rejected even when its hash would match.

// canonicalJSON encodes e in the canonical form (no trailing newline).
func canonicalJSON(e *Event) ([]byte, error) { return encodeEvent(e, nil) }

// encodeEvent is canonicalJSON with the actors of earlier events of the
// same call remembered in memo (nil for none).
func encodeEvent(e *Event, memo *actorMemo) ([]byte, error) {
	if b, err := appendEvent(make([]byte, 0, 1024), e, memo); err == nil {
		return b, nil
	}
	return canonicalJSONReflect(e)
}

// canonicalJSONReflect is the definition appendEvent must match: the
// event as encoding/json's Encoder writes it, without the newline. It
// also encodes what appendEvent leaves to it.
func canonicalJSONReflect(e *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("audit: encode event seq %d: %w", e.Seq, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// computeHash returns the chain hash of e (its Hash field is ignored).
func computeHash(e *Event) (string, error) {
	c := *e
	c.Hash = ""
	b, err := canonicalJSON(&c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ComputeHash returns the chain hash of e as defined above, ignoring e.Hash.
// It lets a caller spot-check a single event (for example one seen in a SIEM).
func ComputeHash(e Event) (string, error) { return computeHash(&e) }

// normalize makes e's free-form maps survive a JSON round trip unchanged, so
// that the hash computed now is the hash a verifier recomputes from the line.
// Values such as structs (field order) would not; they are converted to the
// map form a decoder yields. Simple values are left alone to keep Record cheap.
func normalize(e *Event) error {
	var err error
	if e.Details, err = normalizeMap(e.Details); err != nil {
		return err
	}
	for _, a := range []*Actor{e.Principal, e.Human} {
		if a == nil {
			continue
		}
		attrs, err := normalizeMap(a.Attributes)
		if err != nil {
			return err
		}
		if attrs != nil || a.Attributes != nil {
			c := *a
			c.Attributes = attrs
			if a == e.Principal {
				e.Principal = &c
			} else {
				e.Human = &c
			}
		}
	}
	e.Time = e.Time.UTC()
	return nil
}

func normalizeMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	if len(m) == 0 {
		// An empty map is omitted by omitempty and reads back as nil.
		return nil, nil
	}
	simple := true
	for _, v := range m {
		if !roundTrips(v) {
			simple = false
			break
		}
	}
	if simple {
		return m, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("audit: encode details: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("audit: decode details: %w", err)
	}
	return out, nil
}

// roundTrips reports whether v encodes to the same JSON after a decode with
// UseNumber.
func roundTrips(v any) bool {
	switch x := v.(type) {
	case nil, string, bool, json.Number,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		float32, float64, time.Time, []string:
		return true
	case []any:
		for _, y := range x {
			if !roundTrips(y) {
				return false
			}
		}
		return true
	case map[string]any:
		if len(x) == 0 {
			return true
		}
		for _, y := range x {
			if !roundTrips(y) {
				return false
			}
		}
		return true
	case map[string]string:
		return true
	default:
		return false
	}
}

// emptyHash is how the hash field reads in the encoding that is hashed.
var emptyHash = []byte(`,"hash":"",`)

// spliceHash turns the hashed encoding (hash "") into the event's line by
// writing the hash in; the result equals canonicalJSON of the event with
// its Hash set, because the hash is plain hex and the field order fixed.
// It returns nil when the field is not where it must be.
func spliceHash(b []byte, h string) []byte {
	i := bytes.Index(b, emptyHash)
	if i < 0 {
		return nil
	}
	out := make([]byte, 0, len(b)+len(h))
	out = append(out, b[:i]...)
	out = append(out, `,"hash":"`...)
	out = append(out, h...)
	out = append(out, `",`...)
	return append(out, b[i+len(emptyHash):]...)
}

// lineOf returns the canonical encoding of a chained event, reusing the
// one made while chaining when the event is unchanged since.
func lineOf(e *Event) ([]byte, error) {
	if e.line != nil && e.Hash != "" {
		return e.line, nil
	}
	return canonicalJSON(e)
}
