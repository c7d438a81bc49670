package lease

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// flushLog records, for every lease write, the state written and whether
// the write was allowed to skip the flush (store.Lazy).
type flushLog struct {
	store.Store
	mu     sync.Mutex
	writes []string
}

func (s *flushLog) note(state core.LeaseState, ctx context.Context) {
	kind := "durable"
	if store.IsLazy(ctx) {
		kind = "lazy"
	}
	s.mu.Lock()
	s.writes = append(s.writes, string(state)+" "+kind)
	s.mu.Unlock()
}

func (s *flushLog) CreateLease(ctx context.Context, l core.Lease) error {
	s.note(l.State, ctx)
	return s.Store.CreateLease(ctx, l)
}

func (s *flushLog) UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error) {
	s.note(l.State, ctx)
	return s.Store.UpdateLease(ctx, l, from...)
}

// TestOnlyTheActivationAndTheClaimMaySkipTheFlush: the pending record
// (before the target is touched) and the revocation's outcome are durable
// when they return; the activation and the claim, whose loss in a crash
// start-up recovery or the caller's retry repairs, may commit without a
// flush.
func TestOnlyTheActivationAndTheClaimMaySkipTheFlush(t *testing.T) {
	log := &flushLog{}
	e := newEnv(t, func(o *Options) {
		log.Store = o.Store
		o.Store = log
	})
	l, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.m.Revoke(e.ctx, l.ID); err != nil || got.State != core.LeaseRevoked {
		t.Fatalf("revoke: %v, %v", got.State, err)
	}
	want := []string{"pending durable", "active lazy", "revoking lazy", "revoked durable"}
	if !slices.Equal(log.writes, want) {
		t.Fatalf("lease writes = %q, want %q", log.writes, want)
	}
}

// TestARemoteCredentialsLeaseMaySkipTheFlush: for a credential that cannot
// be recalled (aws-sts) the audit record is the durable record, so the
// lease written during the round trip, and the issuer data after it, may
// commit without a flush.
func TestARemoteCredentialsLeaseMaySkipTheFlush(t *testing.T) {
	log := &flushLog{Store: openSQLite(t)}
	fs := &flakyStore{Store: log}
	rem := &remoteIssuer{localIssuer: localIssuer{fakeIssuer{live: map[string]bool{}}}, leases: fs}
	m, _, cred, err := issueOnce(t, fs, rem, &recorder{}, Limits{}, false, false)
	if err != nil || cred == nil {
		t.Fatalf("Issue = %v, %v", cred, err)
	}
	m.bg.Wait() // the issuer-data update
	want := []string{"active lazy", "active lazy"}
	if !slices.Equal(log.writes, want) {
		t.Fatalf("lease writes = %q, want %q", log.writes, want)
	}
}
