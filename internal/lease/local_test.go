package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// localIssuer signs credentials that need no cleanup (like ssh, x509, jwt).
type localIssuer struct{ fakeIssuer }

func (*localIssuer) NeedsNoCleanup() {}

var _ issuer.NoCleanup = (*localIssuer)(nil)

// flakyStore fails CreateLease on demand.
type flakyStore struct {
	store.Store
	failCreate atomic.Bool
}

func (s *flakyStore) CreateLease(ctx context.Context, l core.Lease) error {
	if s.failCreate.Load() {
		return errors.New("disk full")
	}
	return s.Store.CreateLease(ctx, l)
}

// TestLocalIssueRecordsLeaseAndAuditOrReturnsNothing covers issuers whose
// lease and audit record are written at the same time: the credential is
// returned only when both are durable, and the audit record never ends on
// a success for a credential that was not handed out.
func TestLocalIssueRecordsLeaseAndAuditOrReturnsNothing(t *testing.T) {
	tests := []struct {
		name        string
		storeDown   bool
		auditDown   bool
		limits      Limits
		wantErr     bool
		wantLeases  int
		wantState   core.LeaseState
		lastOutcome string // of the last credential.issue event
	}{
		{name: "both hold", wantLeases: 1, wantState: core.LeaseActive, lastOutcome: audit.OutcomeSuccess},
		{name: "with limits, both hold", limits: Limits{PerPrincipal: 5}, wantLeases: 1, wantState: core.LeaseActive, lastOutcome: audit.OutcomeSuccess},
		{name: "store down", storeDown: true, wantErr: true, lastOutcome: audit.OutcomeFailure},
		{name: "store down with limits", storeDown: true, limits: Limits{PerRole: 5}, wantErr: true, lastOutcome: audit.OutcomeFailure},
		{name: "audit down", auditDown: true, wantErr: true, wantLeases: 1, wantState: core.LeaseRevoked},
		{name: "both down", storeDown: true, auditDown: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &flakyStore{Store: openSQLite(t)}
			loc := &localIssuer{fakeIssuer{live: map[string]bool{}}}
			rec := &recorder{}
			_, l, cred, err := issueOnce(t, fs, loc, rec, tt.limits, tt.storeDown, tt.auditDown)
			if tt.wantErr {
				if core.KindOf(err) != core.KindUnavailable || cred != nil || l.ID != "" {
					t.Fatalf("Issue = %+v, %v, %v; want no credential and an unavailable error", l, cred, err)
				}
			} else if err != nil || cred == nil || l.State != core.LeaseActive {
				t.Fatalf("Issue = %+v, %v, %v", l, cred, err)
			}
			assertIssueRecord(t, fs.Store, rec, tt.wantLeases, tt.wantState, tt.lastOutcome)
		})
	}
}

// assertIssueRecord checks what one Issue left behind: the leases in the
// store (how many, and the state of the one there is) and the outcome of
// the last credential.issue event ("" when the audit log kept none).
func assertIssueRecord(t *testing.T, st store.Store, rec *recorder, leases int, state core.LeaseState, lastOutcome string) {
	t.Helper()
	ls, err := st.ListLeases(context.Background(), store.LeaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != leases || (len(ls) == 1 && ls[0].State != state) {
		t.Fatalf("leases = %+v, want %d in state %s", ls, leases, state)
	}
	rec.mu.Lock()
	var last *audit.Event
	for i := range rec.events {
		if rec.events[i].Type == audit.CredentialIssue {
			last = &rec.events[i]
		}
	}
	rec.mu.Unlock()
	switch {
	case lastOutcome == "" && last != nil:
		t.Fatalf("audit down, yet an event was kept: %+v", last)
	case lastOutcome != "" && (last == nil || last.Outcome != lastOutcome):
		t.Fatalf("last credential.issue event %+v, want outcome %q", last, lastOutcome)
	}
	rec.assertNoSecret(t, "s3cretpassword-value")
}

// issueOnce makes a manager over st with iss as target "t" and issues one
// credential, with the store's lease writes and the audit log failing as
// asked.
func issueOnce(t *testing.T, st *flakyStore, iss issuer.Issuer, rec *recorder, limits Limits, storeDown, auditDown bool) (*Manager, core.Lease, core.Credential, error) {
	t.Helper()
	m, err := New(Options{
		Store: st, Issuers: map[string]issuer.Issuer{"t": iss}, TargetTypes: map[string]string{"t": "fake"},
		Sealer: xorSealer{}, Audit: rec, Holder: "t1", Limits: limits, IssueTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	st.failCreate.Store(storeDown)
	rec.fail.Store(auditDown)
	l, cred, err := m.Issue(context.Background(), IssueRequest{Target: "t", Role: "ro", Principal: bot, TTL: time.Minute,
		Preceding: []audit.Event{{Type: audit.AuthSuccess, Outcome: audit.OutcomeSuccess}}})
	return m, l, cred, err
}
