package identity

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// countingVerifier accepts tokens listed in ok and counts every call.
type countingVerifier struct {
	ok    map[string]core.Principal
	calls int
}

func (v *countingVerifier) Name() string { return "counting" }
func (v *countingVerifier) Verify(_ context.Context, tok string) (core.Principal, error) {
	v.calls++
	p, ok := v.ok[tok]
	if !ok {
		return core.Principal{}, errors.New("bad signature")
	}
	return p, nil
}

func TestCacheVerifiesOncePerTTLAndNeverPastExpiry(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	long := core.Principal{Subject: "long", ExpiresAt: t0.Add(time.Hour), Attributes: map[string]any{"namespace": "agents"}}
	short := core.Principal{Subject: "short", ExpiresAt: t0.Add(10 * time.Second)}
	noExp := core.Principal{Subject: "noexp"}
	tests := []struct {
		name      string
		ttl       time.Duration
		token     string
		later     time.Duration // when the second call comes
		wantCalls int           // calls to the wrapped verifier after two Verify calls
		wantErr   bool
	}{
		{"second call within ttl is cached", 30 * time.Second, "a.b.long", 29 * time.Second, 1, false},
		{"ttl over: verified again", 30 * time.Second, "a.b.long", 31 * time.Second, 2, false},
		{"token expired before ttl: verified again", 30 * time.Second, "a.b.short", 11 * time.Second, 2, false},
		{"token without expiry is never cached", 30 * time.Second, "a.b.noexp", time.Second, 2, false},
		{"failures are never cached", 30 * time.Second, "a.b.bad", time.Second, 2, true},
		{"prefixed proofs are never cached", 30 * time.Second, "aws-iam:proof", time.Second, 2, false},
		{"ttl 0 turns the cache off", 0, "a.b.long", time.Second, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			v := &countingVerifier{ok: map[string]core.Principal{"a.b.long": long, "a.b.short": short, "a.b.noexp": noExp, "aws-iam:proof": long}}
			c := NewCache(v, tt.ttl, func() time.Time { return now })
			first, err1 := c.Verify(context.Background(), tt.token)
			now = now.Add(tt.later)
			second, err2 := c.Verify(context.Background(), tt.token)
			if (err1 != nil) != tt.wantErr || (err2 != nil) != tt.wantErr {
				t.Fatalf("errors %v, %v; want error %v", err1, err2, tt.wantErr)
			}
			if v.calls != tt.wantCalls {
				t.Fatalf("wrapped verifier called %d times, want %d", v.calls, tt.wantCalls)
			}
			if !tt.wantErr && (first.Subject != second.Subject || first.Subject == "") {
				t.Fatalf("principals %q then %q", first.Subject, second.Subject)
			}
		})
	}
}

func TestCacheHandsOutCopies(t *testing.T) {
	now := time.Now()
	human := core.Principal{Subject: "alice", ExpiresAt: now.Add(time.Hour), Attributes: map[string]any{"group": "ops"},
		Actor: &core.Principal{Subject: "bot", Attributes: map[string]any{"namespace": "agents"}}}
	v := &countingVerifier{ok: map[string]core.Principal{"a.b.c": human}}
	c := NewCache(v, time.Minute, nil)
	p, _ := c.Verify(context.Background(), "a.b.c")
	p.Attributes["group"] = "admins"
	p.Actor.Attributes["namespace"] = "kube-system"
	again, err := c.Verify(context.Background(), "a.b.c")
	if err != nil || v.calls != 1 {
		t.Fatalf("second Verify: %v, %d calls", err, v.calls)
	}
	if again.Attributes["group"] != "ops" || again.Actor.Attributes["namespace"] != "agents" {
		t.Fatalf("a caller's change reached the cache: %+v / %+v", again.Attributes, again.Actor.Attributes)
	}
}

func TestCacheIsBounded(t *testing.T) {
	now := time.Now()
	v := &countingVerifier{ok: map[string]core.Principal{}}
	for i := range maxCached + 10 {
		v.ok[string(rune('a'+i%26))+".x."+strconv.Itoa(i)] = core.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}
	}
	c := NewCache(v, time.Minute, nil)
	for tok := range v.ok {
		if _, err := c.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	if n > maxCached {
		t.Fatalf("cache holds %d entries, bound %d", n, maxCached)
	}
}
