package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// remoteIssuer stands in for aws-sts: no cleanup, and Issue is a round
// trip. With leases set, Issue first waits for its lease to be stored,
// which only a manager that writes the lease during Issue lets happen.
type remoteIssuer struct {
	localIssuer
	leases store.Store
}

func (*remoteIssuer) IssuesRemotely() {}

func (r *remoteIssuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	for r.leases != nil {
		if _, err := r.leases.GetLease(ctx, req.LeaseID); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return issuer.Result{}, errors.New("the lease was not written while the credential was minted")
		case <-time.After(time.Millisecond):
		}
	}
	return r.localIssuer.Issue(ctx, req)
}

var _ issuer.Remote = (*remoteIssuer)(nil)

// TestRemoteIssueWritesTheLeaseDuringTheRoundTrip covers issuers whose
// lease is written while they work: the credential is returned only when
// the lease and the audit record hold; a lease whose credential never came
// ends revoked; the issuer's data reaches the lease afterwards.
func TestRemoteIssueWritesTheLeaseDuringTheRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		issueFails  bool
		storeDown   bool
		auditDown   bool
		wantErr     bool
		wantLeases  int
		wantState   core.LeaseState
		lastOutcome string
	}{
		{name: "all hold", wantLeases: 1, wantState: core.LeaseActive, lastOutcome: audit.OutcomeSuccess},
		{name: "the issuer fails", issueFails: true, wantErr: true, wantLeases: 1, wantState: core.LeaseRevoked, lastOutcome: audit.OutcomeFailure},
		{name: "the store is down", storeDown: true, wantErr: true, lastOutcome: audit.OutcomeFailure},
		{name: "the audit log is down", auditDown: true, wantErr: true, wantLeases: 1, wantState: core.LeaseRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &flakyStore{Store: openSQLite(t)}
			rem := &remoteIssuer{localIssuer: localIssuer{fakeIssuer{live: map[string]bool{}}}}
			if !tt.storeDown {
				rem.leases = fs
			}
			if tt.issueFails {
				rem.failIss = errors.New("sts: throttled")
			}
			rec := &recorder{}
			m, l, cred, err := issueOnce(t, fs, rem, rec, Limits{}, tt.storeDown, tt.auditDown)
			if tt.wantErr {
				if err == nil || cred != nil || l.ID != "" {
					t.Fatalf("Issue = %+v, %v, %v; want no credential and an error", l, cred, err)
				}
			} else if err != nil || cred == nil || l.State != core.LeaseActive || l.IssuerData != nil {
				t.Fatalf("Issue = %+v, %v, %v", l, cred, err)
			}
			m.bg.Wait() // the unawaited issuer-data update
			assertIssueRecord(t, fs.Store, rec, tt.wantLeases, tt.wantState, tt.lastOutcome)
			if !tt.wantErr {
				got, err := fs.Store.GetLease(context.Background(), l.ID)
				if err != nil || len(got.IssuerData) == 0 {
					t.Fatalf("the issuer's data never reached the lease: %+v, %v", got, err)
				}
				if _, err := m.open(got); err != nil {
					t.Fatalf("stored issuer data does not open: %v", err)
				}
			}
		})
	}
}
