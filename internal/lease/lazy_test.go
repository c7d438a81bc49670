package lease

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
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

func (s *flushLog) ExpireLeases(ctx context.Context, ids []string, at time.Time) ([]string, error) {
	changed, err := s.Store.ExpireLeases(ctx, ids, at)
	for range changed {
		s.note(core.LeaseRevoked, ctx)
	}
	return changed, err
}

func (s *flushLog) ClaimExpiredLease(ctx context.Context, l core.Lease, now time.Time) (bool, error) {
	s.note(l.State, ctx)
	return s.Store.ClaimExpiredLease(ctx, l, now)
}

func (s *flushLog) UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error) {
	s.note(l.State, ctx)
	return s.Store.UpdateLease(ctx, l, from...)
}

// strictIssuer hides every optional interface of the issuer it wraps:
// here, that its revocation is idempotent.
type strictIssuer struct{ issuer.Issuer }

// TestOnlyWritesARestartRepairsMaySkipTheFlush: the pending record
// (before the target is touched), a failed revocation's backoff, and the
// revocation of a credential whose lease is what revokes it are durable
// when they return; the activation, the claim, and a database user's
// successful drop — whose loss in a crash start-up recovery, the caller's
// retry or the next (idempotent) revocation repairs — may commit without
// a flush.
func TestOnlyWritesARestartRepairsMaySkipTheFlush(t *testing.T) {
	tests := []struct {
		name       string
		signing    bool // an issuer with nothing to clean up (ssh, x509, jwt)
		strict     bool // an issuer that does not say its revocation is idempotent
		targetDown bool
		want       []string
	}{
		{name: "database credential, revoked",
			want: []string{"pending durable", "active lazy", "revoking lazy", "revoked lazy"}},
		{name: "database credential, revocation fails", targetDown: true,
			want: []string{"pending durable", "active lazy", "revoking lazy", "revoking durable"}},
		{name: "signing-only credential, revoked", signing: true,
			want: []string{"active durable", "revoking lazy", "revoked durable"}},
		{name: "credential whose revocation is not idempotent, revoked", strict: true,
			want: []string{"pending durable", "active lazy", "revoking lazy", "revoked durable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &flushLog{}
			e := newEnv(t, func(o *Options) {
				log.Store = o.Store
				o.Store = log
				if tt.signing {
					o.Issuers["a"] = &localIssuer{fakeIssuer{live: map[string]bool{}}}
				}
				if tt.strict {
					o.Issuers["a"] = strictIssuer{o.Issuers["a"]}
				}
			})
			l, _, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			e.a.down.Store(tt.targetDown)
			if _, err := e.m.Revoke(e.ctx, l.ID); err != nil && !tt.targetDown {
				t.Fatalf("revoke: %v", err)
			}
			if !slices.Equal(log.writes, tt.want) {
				t.Fatalf("lease writes = %q, want %q", log.writes, tt.want)
			}
		})
	}
}

// TestAnExpiredSigningOnlyCredentialIsRevokedInOneLazyWrite: once a
// certificate has expired, its lease's revoked state no longer decides
// anything (the KRL lists unexpired certificates only), so the reaper
// marks it revoked straight from active — no claim, no issuer call — in
// a write that may commit without a flush, and records its event.
func TestAnExpiredSigningOnlyCredentialIsRevokedInOneLazyWrite(t *testing.T) {
	log := &flushLog{}
	e := newEnv(t, func(o *Options) {
		log.Store = o.Store
		o.Store = log
		o.Issuers["a"] = &localIssuer{fakeIssuer{live: map[string]bool{}}}
	})
	l := e.issue(t, "a", 100*time.Millisecond)
	e.run(t)
	waitFor(t, 10*time.Second, "the expired lease revoked", func() bool {
		got, err := e.m.Get(e.ctx, l.ID)
		return err == nil && got.State == core.LeaseRevoked
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	if want := []string{"active durable", "revoked lazy"}; !slices.Equal(log.writes, want) {
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

func (s *flushLog) Flush(ctx context.Context) error {
	s.mu.Lock()
	s.writes = append(s.writes, "flush")
	s.mu.Unlock()
	return s.Store.Flush(ctx)
}

// TestKillSwitchFlushesClaimsItCounts: a lease already being revoked is
// counted by the kill switch and left to that revocation, whose claim may
// not be flushed yet; the kill switch flushes before it answers, and again
// after marking.
func TestKillSwitchFlushesClaimsItCounts(t *testing.T) {
	log := &flushLog{}
	e := newEnv(t, func(o *Options) {
		log.Store = o.Store
		o.Store = log
	})
	claimed := e.issue(t, "a", time.Minute)
	e.issue(t, "a", time.Minute)
	// A revocation in progress: claimed (lazily), its attempt not yet made.
	c := claimed
	c.State, c.NextAttempt = core.LeaseRevoking, time.Now().Add(time.Hour)
	if ok, err := log.Store.UpdateLease(store.Lazy(e.ctx), c, core.LeaseActive); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	log.mu.Lock()
	log.writes = nil
	log.mu.Unlock()
	n, err := e.m.RevokeMatching(e.ctx, store.LeaseFilter{Subject: bot.Subject})
	if err != nil || n != 2 {
		t.Fatalf("RevokeMatching = %d, %v; want 2", n, err)
	}
	e.m.bg.Wait()
	want := []string{"flush", "revoking durable", "flush"}
	if !slices.Equal(log.writes, want) {
		t.Fatalf("writes = %q, want %q", log.writes, want)
	}
}
