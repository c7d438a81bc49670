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
		targetDown bool
		want       []string
	}{
		{"database credential, revoked", false, false,
			[]string{"pending durable", "active lazy", "revoking lazy", "revoked lazy"}},
		{"database credential, revocation fails", false, true,
			[]string{"pending durable", "active lazy", "revoking lazy", "revoking durable"}},
		{"signing-only credential, revoked", true, false,
			[]string{"active durable", "revoking lazy", "revoked durable"}},
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

func TestGaugeRefreshBacksOffWhenCountingIsSlow(t *testing.T) {
	tests := []struct {
		took, want time.Duration
	}{
		{0, 2 * time.Second},
		{10 * time.Millisecond, 2 * time.Second},
		{100 * time.Millisecond, 2 * time.Second},
		{500 * time.Millisecond, 10 * time.Second},
		{3 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		if got := gaugeInterval(tt.took); got != tt.want {
			t.Errorf("gaugeInterval(%s) = %s, want %s", tt.took, got, tt.want)
		}
	}
}
