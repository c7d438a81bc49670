package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// tricky are strings whose JSON escaping differs between careless
// encoders: HTML characters, control characters, invalid UTF-8, the
// JavaScript line separators, quotes and backslashes, non-ASCII.
var tricky = []string{
	"", "plain", `<script>&"quoted"\back\slash</script>`, "\x00\x01\x07\b\f\n\r\t\x1f\x7f",
	"\xff\xfe invalid \xc3", "line\u2028sep\u2029para", "ünïcödé ✓ 🙂", "a\u0085b", "\xed\xa0\x80 surrogate",
}

func sampleEvent() Event {
	return Event{
		Seq: 42, Time: time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC), ID: "id-1",
		PrevHash: GenesisHash, Hash: "", Type: CredentialIssue, RequestID: "req", Source: "10.0.0.1",
		Principal: &Actor{Provider: "k8s", Kind: "kubernetes", Subject: "system:serviceaccount:a:b",
			Attributes: map[string]any{"namespace": "a", "groups": []string{"x", "y"}, "n": json.Number("12.5e3"),
				"ok": true, "none": nil, "nested": map[string]any{"z": 1.0, "a": []any{"s", json.Number("-0"), false}}}, TokenID: "jti"},
		Human:  &Actor{Subject: "alice"},
		Target: "db", Role: "ro", LeaseID: "l-1", Rule: "r", Reason: "because", Outcome: OutcomeSuccess, Error: "",
		Details: map[string]any{"ttl": "15m0s", "count": int64(3), "i": 7, "f": 0.1, "big": 1e21, "small": 1e-7,
			"neg": -2.5, "zero": 0.0, "u": uint64(18446744073709551615)},
	}
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	base := sampleEvent()
	tests := []struct {
		name string
		mod  func(e *Event)
	}{
		{"full event", func(*Event) {}},
		{"minimal event", func(e *Event) { *e = Event{Type: AuthFailure, Outcome: OutcomeFailure} }},
		{"empty actor", func(e *Event) { e.Principal = &Actor{} }},
		{"empty maps are omitted", func(e *Event) { e.Details = map[string]any{}; e.Principal.Attributes = map[string]any{} }},
		{"time with an offset", func(e *Event) { e.Time = e.Time.In(time.FixedZone("x", 5*3600+1800)) }},
		{"whole seconds", func(e *Event) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }},
		{"empty json.Number", func(e *Event) { e.Details["n"] = json.Number("") }},
		{"float edges", func(e *Event) {
			e.Details = map[string]any{"a": 1e-6, "b": 9.999e20, "c": 123456789.0, "d": -1e-300, "e": math.MaxFloat64, "f": math.SmallestNonzeroFloat64}
		}},
		{"nil slices and maps inside", func(e *Event) {
			e.Details = map[string]any{"s": []string(nil), "a": []any(nil), "m": map[string]any(nil)}
		}},
	}
	for _, s := range tricky {
		s := s
		tests = append(tests, struct {
			name string
			mod  func(e *Event)
		}{"tricky " + s, func(e *Event) {
			e.Type, e.Error, e.Principal.Subject = s, s, s
			e.Details = map[string]any{s: s, "k" + s: []string{s}}
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			p := *base.Principal
			p.Attributes = map[string]any{}
			for k, v := range base.Principal.Attributes {
				p.Attributes[k] = v
			}
			e.Principal = &p
			e.Details = map[string]any{}
			for k, v := range base.Details {
				e.Details[k] = v
			}
			tt.mod(&e)
			if _, err := appendEvent(nil, &e, nil); err != nil {
				t.Fatalf("appendEvent stepped aside: %v", err)
			}
			assertSameEncoding(t, &e)
		})
	}
}

// TestAppendEventLeavesTheRestToEncodingJSON: values the fast encoder does
// not handle make it step aside, and canonicalJSON still gives
// encoding/json's bytes (or its error).
func TestAppendEventLeavesTheRestToEncodingJSON(t *testing.T) {
	tests := []struct {
		name    string
		details map[string]any
		wantErr bool
	}{
		{"a struct value", map[string]any{"s": struct{ A int }{1}}, false},
		{"a float32", map[string]any{"f": float32(0.1)}, false},
		{"an invalid json.Number", map[string]any{"n": json.Number(" 1")}, true},
		{"NaN", map[string]any{"n": math.NaN()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Event{Type: "x", Outcome: "y", Details: tt.details}
			if _, err := appendEvent(nil, &e, nil); err != errSlowPath {
				t.Fatalf("appendEvent = %v, want errSlowPath", err)
			}
			got, err := canonicalJSON(&e)
			want, werr := canonicalJSONReflect(&e)
			if (err != nil) != tt.wantErr || (werr != nil) != tt.wantErr || !bytes.Equal(got, want) {
				t.Fatalf("canonicalJSON = %s, %v; encoding/json = %s, %v", got, err, want, werr)
			}
		})
	}
}

func assertSameEncoding(t *testing.T, e *Event) {
	t.Helper()
	want, werr := canonicalJSONReflect(e)
	got, err := appendEvent(nil, e, nil)
	if err == errSlowPath {
		return // encoding/json handles it; nothing to compare
	}
	if werr != nil || err != nil {
		t.Fatalf("errors: fast %v, encoding/json %v", err, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast encoding differs:\n got %s\nwant %s", got, want)
	}
}

func FuzzAppendEventMatchesEncodingJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, s, int64(1), 0.5, "1.5")
	}
	f.Add("<&>", "k", int64(-9), 1e300, "-0.0e-0")
	f.Fuzz(func(t *testing.T, s, key string, n int64, x float64, num string) {
		e := sampleEvent()
		e.Type, e.Source, e.Error, e.Principal.Subject, e.Human.TokenID = s, key, s+key, s, key
		e.Time = time.Unix(0, n).UTC()
		e.Details = map[string]any{key: s, s: n, "x": x, "num": json.Number(num), "l": []any{s, x, nil}}
		e.Principal.Attributes = map[string]any{key: []string{s, key}, "m": map[string]any{s: x}}
		assertSameEncoding(t, &e)
		// With a memo, as RecordAll's events: the second event takes both
		// actors from it.
		var memo actorMemo
		e2 := e
		p, h := *e.Principal, *e.Human
		e2.Principal, e2.Human, e2.Seq = &p, &h, e.Seq+1
		for _, x := range []*Event{&e, &e2} {
			got, err := encodeEvent(x, &memo)
			want, werr := canonicalJSONReflect(x)
			if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
				t.Fatalf("with the memo: %s, %v; encoding/json: %s, %v", got, err, want, werr)
			}
		}
	})
}

func BenchmarkCanonicalJSON(b *testing.B) {
	e := sampleEvent()
	for _, c := range []struct {
		name string
		enc  func(*Event) ([]byte, error)
	}{{"append", canonicalJSON}, {"encoding-json", canonicalJSONReflect}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.enc(&e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
