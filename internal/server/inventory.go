package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// inventoryBody is POST /v1/inventory: a full snapshot of one source.
type inventoryBody struct {
	Source   string             `json:"source"`
	Findings []inventoryFinding `json:"findings"`
}

// inventoryFinding has the JSON fields of `stint scan --format json`'s
// findings, so that a report posts as is. Only the location, rule,
// fingerprint and redacted form are stored; the descriptive fields are
// accepted and dropped.
type inventoryFinding struct {
	RuleID        string `json:"rule_id"`
	File          string `json:"file"`
	Line          int    `json:"line"`
	Commit        string `json:"commit,omitempty"`
	Redacted      string `json:"redacted"`
	Fingerprint   string `json:"fingerprint"`
	PresentAtHead *bool  `json:"present_at_head,omitempty"` // absent: a plain tree, so at HEAD

	Description string          `json:"description,omitempty"`
	Column      int             `json:"column,omitempty"`
	Confidence  string          `json:"confidence,omitempty"`
	Author      string          `json:"author,omitempty"`
	Date        string          `json:"date,omitempty"`
	Remediation json.RawMessage `json:"remediation,omitempty"`
}

// inventoryView is one finding as GET /v1/inventory returns it.
type inventoryView struct {
	Source        string     `json:"source"`
	Fingerprint   string     `json:"fingerprint"`
	File          string     `json:"file"`
	RuleID        string     `json:"rule_id"`
	Line          int        `json:"line"`
	Commit        string     `json:"commit,omitempty"`
	Redacted      string     `json:"redacted"`
	State         string     `json:"state"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	RemediatedAt  *time.Time `json:"remediated_at,omitempty"`
	PresentAtHead bool       `json:"present_at_head"`
}

// inventoryDiffView is POST /v1/inventory's answer.
type inventoryDiffView struct {
	New        int `json:"new"`
	Present    int `json:"present"`
	Reopened   int `json:"reopened"`
	Remediated int `json:"remediated"`
}

// reportInventory is POST /v1/inventory (admin).
func (s *Server) reportInventory(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	var b inventoryBody
	if err := decodeJSON(r, &b); err != nil {
		s.fail(w, r, m, err)
		return
	}
	fs := make([]store.Finding, len(b.Findings))
	for i, f := range b.Findings {
		fs[i] = store.Finding{Fingerprint: f.Fingerprint, File: f.File, Rule: f.RuleID, Line: f.Line,
			Commit: f.Commit, Redacted: f.Redacted, PresentAtHead: f.PresentAtHead == nil || *f.PresentAtHead}
	}
	d, err := s.o.Broker.ReportInventory(r.Context(), broker.InventoryReport{Token: tok, Source: b.Source, Findings: fs, Meta: m})
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	writeJSON(w, http.StatusOK, inventoryDiffView{New: d.New, Present: d.Present, Reopened: d.Reopened, Remediated: d.Remediated})
}

// listInventory is GET /v1/inventory?source=&state=open|remediated&rule=&fingerprint=&limit= (admin).
func (s *Server) listInventory(w http.ResponseWriter, r *http.Request, m broker.Meta, tok string) {
	q := r.URL.Query()
	f := store.FindingFilter{Source: q.Get("source"), Rule: q.Get("rule"), Fingerprint: q.Get("fingerprint"),
		State: store.FindingState(q.Get("state"))}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > broker.MaxInventoryFindings {
			s.fail(w, r, m, invalidLimit())
			return
		}
		f.Limit = n
	}
	fs, err := s.o.Broker.ListInventory(r.Context(), m, tok, f)
	if err != nil {
		s.fail(w, r, m, err)
		return
	}
	out := make([]inventoryView, len(fs))
	for i, x := range fs {
		v := inventoryView{Source: x.Source, Fingerprint: x.Fingerprint, File: x.File, RuleID: x.Rule, Line: x.Line,
			Commit: x.Commit, Redacted: x.Redacted, State: string(store.FindingOpen),
			FirstSeen: x.FirstSeen, LastSeen: x.LastSeen, PresentAtHead: x.PresentAtHead}
		if !x.Open() {
			t := x.RemediatedAt
			v.State, v.RemediatedAt = string(store.FindingRemediated), &t
		}
		out[i] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{"findings": out})
}

func invalidLimit() error {
	return core.Invalid("limit must be between 1 and %d", broker.MaxInventoryFindings)
}
