package lease

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// activationStore fails the pending → active update on demand.
type activationStore struct {
	store.Store
	failActivate atomic.Bool
}

func (s *activationStore) UpdateLease(ctx context.Context, l core.Lease, from ...core.LeaseState) (bool, error) {
	if s.failActivate.Load() && l.State == core.LeaseActive && slices.Equal(from, []core.LeaseState{core.LeasePending}) {
		return false, errors.New("disk full")
	}
	return s.Store.UpdateLease(ctx, l, from...)
}

// TestIssueActivationAndAuditAreBothRequired covers Issue writing the
// lease's activation and the audit record at the same time: the credential
// is returned only when both are durable, a credential that is not returned
// is revoked (now, or by the reaper from its pending lease), and an audit
// record that already says issued is followed by the failure.
func TestIssueActivationAndAuditAreBothRequired(t *testing.T) {
	tests := []struct {
		name          string
		activateDown  bool // the store fails the activation
		revokedMidway bool // the kill switch marks the lease while the target works
		auditDown     bool
		wantErr       bool
		wantState     core.LeaseState
		wantLive      bool     // the target still holds the credential
		wantOutcomes  []string // of the credential.issue events, in order
	}{
		{name: "both hold", wantState: core.LeaseActive, wantLive: true,
			wantOutcomes: []string{audit.OutcomeSuccess}},
		{name: "activation fails", activateDown: true, wantErr: true, wantState: core.LeasePending, wantLive: true,
			wantOutcomes: []string{audit.OutcomeSuccess, audit.OutcomeFailure}},
		{name: "revoked while issued", revokedMidway: true, wantErr: true, wantState: core.LeaseRevoking, wantLive: true,
			wantOutcomes: []string{audit.OutcomeSuccess, audit.OutcomeFailure}},
		{name: "audit down", auditDown: true, wantErr: true, wantState: core.LeaseRevoked},
		{name: "both down", activateDown: true, auditDown: true, wantErr: true, wantState: core.LeasePending, wantLive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := &activationStore{}
			e := newEnv(t, func(o *Options) {
				as.Store = o.Store
				o.Store = as
				if tt.revokedMidway {
					o.Hooks = &TestHooks{AfterIssue: func(id string) error {
						l, err := as.Store.GetLease(context.Background(), id)
						if err != nil {
							return err
						}
						l.State = core.LeaseRevoking
						_, err = as.Store.UpdateLease(context.Background(), l, core.LeasePending)
						return err
					}}
				}
			})
			as.failActivate.Store(tt.activateDown)
			e.rec.fail.Store(tt.auditDown)
			l, cred, err := e.m.Issue(e.ctx, IssueRequest{Target: "a", Role: "ro", Principal: bot, TTL: time.Minute,
				Preceding: []audit.Event{{Type: audit.AuthSuccess, Outcome: audit.OutcomeSuccess}}})
			if tt.wantErr {
				if core.KindOf(err) != core.KindUnavailable || cred != nil || l.ID != "" {
					t.Fatalf("Issue = %+v, %v, %v; want no credential and an unavailable error", l, cred, err)
				}
			} else if err != nil || cred == nil || l.State != core.LeaseActive || l.IssuerData != nil {
				t.Fatalf("Issue = %+v, %v, %v", l, cred, err)
			}
			ls, err := as.Store.ListLeases(e.ctx, store.LeaseFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 1 || ls[0].State != tt.wantState {
				t.Fatalf("leases = %+v, want one in state %s", ls, tt.wantState)
			}
			if got := e.a.isLive(ls[0].ID); got != tt.wantLive {
				t.Errorf("credential live = %v, want %v", got, tt.wantLive)
			}
			if tt.wantLive && tt.wantErr && !ls[0].NextAttempt.After(time.Time{}) {
				// Not returned and not yet revoked: the reaper must find it.
				t.Errorf("lease %+v is not due for the reaper", ls[0])
			}
			var outcomes []string
			e.rec.mu.Lock()
			for _, ev := range e.rec.events {
				if ev.Type == audit.CredentialIssue {
					outcomes = append(outcomes, ev.Outcome)
					if ev.LeaseID != ls[0].ID {
						t.Errorf("event %+v names lease %q, want %q", ev, ev.LeaseID, ls[0].ID)
					}
				}
			}
			e.rec.mu.Unlock()
			if !slices.Equal(outcomes, tt.wantOutcomes) {
				t.Errorf("credential.issue outcomes = %v, want %v", outcomes, tt.wantOutcomes)
			}
			e.rec.assertNoSecret(t, "s3cretpassword-value")
		})
	}
}

// TestRevokeLeaseWithAStaleRead covers the API's revocation of a lease it
// read before: the claim's compare-and-set decides, so a lease revoked or
// claimed meanwhile is returned as stored and the target is not asked again.
func TestRevokeLeaseWithAStaleRead(t *testing.T) {
	tests := []struct {
		name        string
		meanwhile   func(e *env, l core.Lease)
		wantState   core.LeaseState
		wantRevokes int64
	}{
		{name: "fresh", meanwhile: func(*env, core.Lease) {}, wantState: core.LeaseRevoked, wantRevokes: 1},
		{name: "revoked meanwhile", meanwhile: func(e *env, l core.Lease) {
			if _, err := e.m.Revoke(e.ctx, l.ID); err != nil {
				panic(err)
			}
		}, wantState: core.LeaseRevoked, wantRevokes: 1},
		{name: "claimed meanwhile", meanwhile: func(e *env, l core.Lease) {
			c, err := e.st.GetLease(e.ctx, l.ID)
			if err != nil {
				panic(err)
			}
			c.State = core.LeaseRevoking
			if ok, err := e.st.UpdateLease(e.ctx, c, core.LeaseActive); !ok || err != nil {
				panic(err)
			}
		}, wantState: core.LeaseRevoking, wantRevokes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			issued := e.issue(t, "a", time.Minute)
			read, err := e.m.Get(e.ctx, issued.ID)
			if err != nil {
				t.Fatal(err)
			}
			tt.meanwhile(e, read)
			got, err := e.m.RevokeLease(e.ctx, read)
			if err != nil {
				t.Fatalf("RevokeLease: %v", err)
			}
			if got.State != tt.wantState || got.IssuerData != nil {
				t.Errorf("RevokeLease = %+v, want state %s without issuer data", got, tt.wantState)
			}
			if n := e.a.revokes.Load(); n != tt.wantRevokes {
				t.Errorf("target asked to revoke %d times, want %d", n, tt.wantRevokes)
			}
			if stored := e.state(t, issued.ID); stored.State != tt.wantState {
				t.Errorf("stored state %s, want %s", stored.State, tt.wantState)
			}
		})
	}
}
