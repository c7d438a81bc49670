package audit

import (
	"bytes"
	"testing"
	"time"
)

// The line cached while chaining is byte for byte the canonical encoding of
// the chained event, whatever the event holds.
func TestCachedLineIsCanonical(t *testing.T) {
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: &memSink{}}}, Now: func() time.Time { return time.Unix(1800000000, 5).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []Event{
		{Type: AuthSuccess, Outcome: OutcomeSuccess},
		{Type: CredentialIssue, Outcome: OutcomeFailure, Error: `quote " and ,"hash":"", inside`, Reason: "\u2028 and <html>",
			Principal: &Actor{Provider: "p", Subject: `s","hash":"x`, Attributes: map[string]any{"groups": []any{"a", "b"}, "n": 1.5}},
			Details:   map[string]any{"hash": "", "nested": map[string]any{"k": []any{true, nil}}}},
	}
	prev := GenesisHash
	var seq uint64
	for _, e := range cases {
		seq, prev, err = l.chain(&e, seq, prev, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := canonicalJSON(&e)
		if err != nil {
			t.Fatal(err)
		}
		if e.line == nil || !bytes.Equal(e.line, want) {
			t.Fatalf("cached line differs:\n got %s\nwant %s", e.line, want)
		}
		if h, _ := computeHash(&e); h != e.Hash {
			t.Fatalf("hash %s, recomputed %s", e.Hash, h)
		}
	}
}
