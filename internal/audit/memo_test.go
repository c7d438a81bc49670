package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// TestActorMemoChangesNoByte: events encoded one after another with a
// shared memo, as one append does, give exactly the lines each event gets
// encoded alone and the lines encoding/json writes, whichever actors they
// share; and the memo keeps one encoding per actor that is the same
// strings with the very same attributes map, no more, no less.
func TestActorMemoChangesNoByte(t *testing.T) {
	attrs := k8sActor().Attributes
	same := func(a *Actor) *Actor { c := *a; return &c } // what each event of a request gets
	k8s := func() *Actor { a := k8sActor(); a.Attributes = attrs; return a }
	withSlices := map[string]any{"groups": []string{"a", "b"}, "l": []any{"x", 1.5, nil}, "m": map[string]any{"k": []any{true}}}
	evt := func(typ string, p, h *Actor) Event {
		return Event{Seq: 7, Time: time.Date(2026, 11, 26, 10, 0, 0, 5, time.UTC), ID: "id", PrevHash: GenesisHash,
			Type: typ, Outcome: OutcomeSuccess, Principal: p, Human: h}
	}
	tests := []struct {
		name   string
		events func() []Event
		memoed int // actor encodings the memo keeps
	}{
		{"one principal, distinct actors, one map", func() []Event {
			p := k8s()
			return []Event{evt(AuthSuccess, same(p), nil), evt(PolicyAllow, same(p), nil), evt(CredentialIssue, same(p), nil)}
		}, 1},
		{"the same *Actor as principal and human", func() []Event {
			p := k8s()
			return []Event{evt(AuthSuccess, p, p), evt(PolicyAllow, p, nil)}
		}, 1},
		{"equal content in different maps is encoded each time", func() []Event {
			return []Event{evt(AuthSuccess, k8sActor(), nil), evt(PolicyAllow, k8sActor(), nil), evt(CredentialIssue, k8sActor(), nil)}
		}, 3},
		{"nil attributes are the same", func() []Event {
			p := &Actor{Provider: "github", Subject: "repo:o/r:ref:refs/heads/main"}
			return []Event{evt(AuthSuccess, same(p), nil), evt(PolicyAllow, same(p), nil)}
		}, 1},
		{"an empty map is not nil", func() []Event {
			return []Event{evt(AuthSuccess, &Actor{Subject: "s"}, nil), evt(PolicyAllow, &Actor{Subject: "s", Attributes: map[string]any{}}, nil),
				evt(CredentialIssue, &Actor{Subject: "s"}, nil)}
		}, 2},
		{"one map, other strings", func() []Event {
			p := k8s()
			prov, kind, subj, tok := same(p), same(p), same(p), same(p)
			prov.Provider, kind.Kind, subj.Subject, tok.TokenID = "other", "", "system:serviceaccount:payments:worker", ""
			return []Event{evt(AuthSuccess, p, nil), evt(AuthSuccess, prov, nil), evt(AuthSuccess, kind, nil),
				evt(AuthSuccess, subj, nil), evt(AuthSuccess, tok, nil), evt(AuthSuccess, same(p), nil)}
		}, 4}, // the memo holds four; the fifth is encoded without it
		{"a principal acting for a human", func() []Event {
			p, h := k8s(), &Actor{Provider: "oidc", Subject: "alice@example.com", Attributes: map[string]any{"groups": []string{"dba"}}}
			return []Event{evt(AuthSuccess, same(p), same(h)), evt(PolicyAllow, same(p), same(h)), evt(CredentialIssue, same(p), same(h))}
		}, 2},
		{"a human only", func() []Event {
			h := &Actor{Subject: "bob", Attributes: withSlices}
			return []Event{evt(AdminPrefix+"revoke", nil, same(h)), evt(CredentialRevoke, nil, same(h))}
		}, 1},
		{"slices and maps among the attributes", func() []Event {
			p := &Actor{Provider: "jwt", Subject: "s", Attributes: withSlices}
			return []Event{evt(AuthSuccess, same(p), nil), evt(PolicyAllow, same(p), nil)}
		}, 1},
		{"tricky strings", func() []Event {
			m := map[string]any{}
			for i, s := range tricky {
				m[s] = tricky[len(tricky)-1-i]
			}
			p := &Actor{Provider: tricky[2], Kind: tricky[3], Subject: tricky[4], TokenID: tricky[5], Attributes: m}
			return []Event{evt(AuthSuccess, same(p), same(p)), evt(PolicyAllow, same(p), nil)}
		}, 1},
		{"more actors than the memo holds", func() []Event {
			var evs []Event
			for range 2 {
				for _, s := range []string{"a", "b", "c", "d", "e", "f"} {
					evs = append(evs, evt(AuthSuccess, &Actor{Subject: s, Attributes: attrs}, &Actor{Subject: s}))
				}
			}
			return evs
		}, 4},
		{"an event that needs encoding/json between two that share", func() []Event {
			p := k8s()
			evs := []Event{evt(AuthSuccess, same(p), nil), evt(PolicyAllow, same(p), nil), evt(CredentialIssue, same(p), nil)}
			evs[1].Details = map[string]any{"s": struct{ A int }{1}} // not for appendEvent
			return evs
		}, 1},
		{"attributes that need encoding/json are not remembered", func() []Event {
			p := &Actor{Subject: "s", Attributes: map[string]any{"f": float32(0.25)}}
			return []Event{evt(AuthSuccess, same(p), nil), evt(PolicyAllow, same(p), nil)}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := tt.events()
			var memo actorMemo
			lines := make([][]byte, len(evs))
			for i := range evs {
				e := &evs[i]
				got, err := encodeEvent(e, &memo)
				if err != nil {
					t.Fatal(err)
				}
				alone, err := canonicalJSON(e)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := canonicalJSONReflect(e)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, alone) || !bytes.Equal(got, ref) {
					t.Fatalf("event %d with the memo:\n got %s\nalone %s\nencoding/json %s", i, got, alone, ref)
				}
				lines[i] = got
			}
			if memo.n != tt.memoed {
				t.Errorf("memo keeps %d actors, want %d", memo.n, tt.memoed)
			}
			for i := range evs { // later events must not have written over earlier ones
				if want, _ := canonicalJSONReflect(&evs[i]); !bytes.Equal(lines[i], want) {
					t.Fatalf("event %d changed after it was encoded:\n got %s\nwant %s", i, lines[i], want)
				}
			}
		})
	}
}

// TestRecordAllWithSharedActorsVerifies: a record written by RecordAll
// calls whose events share their actors (and calls in which equal actors
// have maps of their own) is canonical line by line and verifies as a
// chain, with the checkpoints a Log adds among them.
func TestRecordAllWithSharedActorsVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fs, err := NewFileSink(path, FileOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mem := &memSink{}
	key := testKey(t)
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: fs, Required: true}, {Sink: mem, Required: true}},
		Logger: quiet, CheckpointKey: key, CheckpointEvery: 7})
	if err != nil {
		t.Fatal(err)
	}
	human := &Actor{Provider: "oidc", Subject: "alice", Attributes: map[string]any{"groups": []any{"dba", "ops"}}}
	for i := range 10 {
		p := k8sActor()
		p.Attributes["n"] = json.Number(itoa(i))
		p2 := *p
		p3 := *p
		if i%3 == 1 { // equal content, another map
			p3.Attributes = map[string]any{}
			for k, v := range p.Attributes {
				p3.Attributes[k] = v
			}
		}
		evs := []Event{
			{Type: AuthSuccess, Outcome: OutcomeSuccess, Principal: p},
			{Type: PolicyAllow, Outcome: OutcomeSuccess, Principal: &p2, Rule: "r"},
			{Type: CredentialIssue, Outcome: OutcomeSuccess, Principal: &p3, Details: map[string]any{"ttl": "15m0s"}},
		}
		evs[0].ID = "set by the caller" // RecordAll assigns IDs
		if i%2 == 0 {
			for j := range evs {
				evs[j].Human = human
			}
		}
		if err := l.RecordAll(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := mem.got()
	if len(got) < 30 {
		t.Fatalf("%d events, want at least 30", len(got))
	}
	ids := map[string]bool{}
	for i := range got {
		if len(got[i].ID) != 36 || ids[got[i].ID] {
			t.Fatalf("seq %d has ID %q", got[i].Seq, got[i].ID)
		}
		ids[got[i].ID] = true
		want, err := canonicalJSONReflect(&got[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i].line, want) {
			t.Fatalf("seq %d: line\n %s\nencoding/json\n %s", got[i].Seq, got[i].line, want)
		}
	}
	res, err := verifyFile(t, path, VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey), RequireCheckpoint: true})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Events != len(got) || res.UnsealedEvents != 0 || res.Checkpoints < 4 {
		t.Fatalf("verified %+v, want %d events, all sealed", res, len(got))
	}
}
