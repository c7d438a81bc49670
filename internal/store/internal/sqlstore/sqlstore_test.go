package sqlstore

import (
	"strings"
	"testing"

	"github.com/stint-dev/stint/internal/core"
)

func TestRebindNumbersPlaceholdersOnlyWhenAsked(t *testing.T) {
	cases := []struct {
		numbered bool
		in, want string
	}{
		{true, "SELECT a FROM t WHERE x = ? AND y IN (?, ?)", "SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)"},
		{true, "SELECT 1", "SELECT 1"},
		{false, "SELECT a FROM t WHERE x = ?", "SELECT a FROM t WHERE x = ?"},
	}
	for _, c := range cases {
		if got := (Dialect{Numbered: c.numbered}).Rebind(c.in); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMigrationsSplitIntoDialectStatements(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations = %+v, want version 1 first", ms)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			t.Fatalf("migrations out of order: %d after %d", ms[i].Version, ms[i-1].Version)
		}
	}
	for _, d := range []Dialect{{Bytes: "BLOB"}, {Bytes: "BYTEA"}} {
		stmts := d.Statements(ms[0])
		if len(stmts) < 5 {
			t.Fatalf("%s: %d statements, want the tables and indexes", d.Bytes, len(stmts))
		}
		for _, s := range stmts {
			if strings.Contains(s, "{{") || !strings.HasSuffix(s, ";") {
				t.Errorf("%s: malformed statement %q", d.Bytes, s)
			}
		}
		if joined := strings.Join(stmts, "\n"); !strings.Contains(joined, "value "+d.Bytes+" NOT NULL") {
			t.Errorf("%s: bytes type not substituted", d.Bytes)
		}
	}
}

func TestDueQueryRepeatsPartialIndexPredicate(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	const pred = "WHERE state IN ('pending', 'active', 'revoking', 'failed')"
	if !strings.Contains(ms[0].SQL, "ON leases (due_at, id)\n\t"+pred) || !strings.Contains(DueQuery, pred) {
		t.Fatal("DueQuery and the leases_due index no longer share their predicate; SQLite would stop using the index")
	}
}

func TestStatesAreWrittenAsLiteralsInOneOrder(t *testing.T) {
	tests := []struct {
		states   []core.LeaseState
		want     string
		wantArgs int
	}{
		{[]core.LeaseState{core.LeaseFailed}, `state = 'failed'`, 0},
		{[]core.LeaseState{core.LeaseActive, core.LeasePending}, `state IN ('pending', 'active')`, 0},
		{[]core.LeaseState{core.LeasePending, core.LeaseActive, core.LeasePending}, `state IN ('pending', 'active')`, 0},
		{[]core.LeaseState{core.LeaseFailed, core.LeaseRevoking, core.LeaseActive, core.LeasePending}, `state IN ('pending', 'active', 'revoking', 'failed')`, 0},
		// Not a known state: never spliced into the SQL.
		{[]core.LeaseState{core.LeaseActive, "x') OR 1=1 --"}, `state IN (?, ?)`, 2},
	}
	for _, tt := range tests {
		got, args := statesSQL(tt.states)
		if got != tt.want || len(args) != tt.wantArgs {
			t.Errorf("statesSQL(%q) = %q, %d args; want %q, %d", tt.states, got, len(args), tt.want, tt.wantArgs)
		}
	}
	if !strings.Contains(DueQuery, `state IN ('pending', 'active', 'revoking', 'failed')`) {
		t.Error("DueQuery no longer lists its states in statesSQL's order")
	}
}
