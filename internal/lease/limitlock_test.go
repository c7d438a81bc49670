package lease

import (
	"context"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// slowCreateStore holds CreateLease for one subject until released.
type slowCreateStore struct {
	store.Store
	subject string
	entered chan struct{}
	release chan struct{}
}

func (s *slowCreateStore) CreateLease(ctx context.Context, l core.Lease) error {
	if l.Subject == s.subject {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.CreateLease(ctx, l)
}

// TestLimitsSerializeOnlyIssuesThatShareALimit: while one principal's
// create waits for its write, another principal's issue goes through, and
// the first principal's next issue waits its turn (so its count sees the
// first lease).
func TestLimitsSerializeOnlyIssuesThatShareALimit(t *testing.T) {
	slow := &slowCreateStore{subject: bot.Subject, entered: make(chan struct{}, 2), release: make(chan struct{})}
	e := newEnv(t, func(o *Options) {
		slow.Store = o.Store
		o.Store = slow
		o.Limits = Limits{PerPrincipal: 1}
	})
	issue := func(p core.Principal) chan error {
		done := make(chan error, 1)
		go func() {
			_, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: p, TTL: time.Minute})
			done <- err
		}()
		return done
	}
	first := issue(bot)
	<-slow.entered // bot's create holds its principal's lock

	var other core.Principal
	for i := range 1000 { // a principal on another stripe than bot
		other = core.Principal{Provider: "k8s", Subject: "agents:other-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		if e.m.limits.stripe(other.Provider, other.Subject) != e.m.limits.stripe(bot.Provider, bot.Subject) {
			break
		}
	}
	select {
	case err := <-issue(other):
		if err != nil {
			t.Fatalf("another principal's issue: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("another principal's issue waited for bot's create")
	}

	second := issue(bot)
	select {
	case err := <-second:
		t.Fatalf("bot's second issue did not wait for its first create: %v", err)
	case <-slow.entered:
		t.Fatal("bot's second issue reached the store while the first was still being created")
	case <-time.After(200 * time.Millisecond):
	}
	close(slow.release)
	if err := <-first; err != nil {
		t.Fatalf("bot's first issue: %v", err)
	}
	if err := <-second; core.KindOf(err) != core.KindRateLimited {
		t.Fatalf("bot's second issue: %v, want the limit (its count must see the first lease)", err)
	}
}
