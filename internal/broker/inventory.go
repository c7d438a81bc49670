package broker

import (
	"context"
	"encoding/hex"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/store"
)

// Inventory keeps the credential inventory (store.Store does).
type Inventory interface {
	UpsertFindings(ctx context.Context, source string, findings []store.Finding, now time.Time) (store.InventoryDiff, error)
	ListFindings(ctx context.Context, f store.FindingFilter) ([]store.Finding, error)
}

// Bounds of one inventory report. A fingerprint must look like the
// scanner's (hex, 8 to 64 bytes) and a redacted form be short, so that a
// client that mixed up fields cannot get a raw secret stored.
const (
	MaxInventoryFindings = 10000
	maxInventoryList     = 10000
	maxSourceLen         = 256
	maxPathLen           = 4096
	maxRuleLen           = 128
	maxCommitLen         = 64
	maxRedactedRunes     = 16
)

// InventoryReport is one scan's full snapshot of a source's findings:
// findings of the source that it lacks count as remediated.
type InventoryReport struct {
	Token    string
	Source   string
	Findings []store.Finding
	Meta     Meta
}

// ReportInventory records a report for an admin and audits
// admin.inventory_report with its counts (never a finding's content).
func (b *Broker) ReportInventory(ctx context.Context, r InventoryReport) (store.InventoryDiff, error) {
	var diff store.InventoryDiff
	ev, err := b.inventoryCaller(ctx, r.Meta, r.Token, "inventory_report", "reporting to the inventory needs stint/admin")
	if err != nil {
		return diff, err
	}
	if err := checkReport(r.Source, r.Findings); err != nil {
		ev.Outcome, ev.Reason = audit.OutcomeFailure, "invalid report"
		ev.Details = map[string]any{"source": quote(r.Source), "findings": len(r.Findings)}
		_ = b.record(ctx, ev)
		return diff, err
	}
	diff, err = b.o.Inventory.UpsertFindings(ctx, r.Source, r.Findings, b.o.Now())
	ev.Details = map[string]any{"source": r.Source, "findings": len(r.Findings)}
	if err != nil {
		ev.Outcome, ev.Error = audit.OutcomeFailure, errText(err)
		_ = b.record(ctx, ev)
		return diff, core.E(core.KindUnavailable, "", "the inventory could not be updated", err)
	}
	ev.Details["new"], ev.Details["present"] = diff.New, diff.Present
	ev.Details["reopened"], ev.Details["remediated"] = diff.Reopened, diff.Remediated
	if err := b.record(ctx, ev); err != nil {
		return diff, err
	}
	return diff, nil
}

// ListInventory returns inventory findings to an admin, at most 10,000.
func (b *Broker) ListInventory(ctx context.Context, m Meta, token string, f store.FindingFilter) ([]store.Finding, error) {
	ev, err := b.inventoryCaller(ctx, m, token, "inventory_list", "reading the inventory needs stint/admin")
	if err != nil {
		return nil, err
	}
	switch f.State {
	case "", store.FindingOpen, store.FindingRemediated:
	default:
		return nil, core.Invalid("state must be open or remediated")
	}
	if f.Limit <= 0 || f.Limit > maxInventoryList {
		f.Limit = maxInventoryList
	}
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	out, err := b.o.Inventory.ListFindings(ctx, f)
	if err != nil {
		return nil, core.E(core.KindUnavailable, "", "the inventory could not be read", err)
	}
	return out, nil
}

// inventoryCaller authenticates an admin and returns the event to audit;
// a non-admin's attempt is audited as denied.
func (b *Broker) inventoryCaller(ctx context.Context, m Meta, token, action, denied string) (audit.Event, error) {
	if b.o.Inventory == nil {
		return audit.Event{}, core.E(core.KindUnavailable, "", "the inventory is not configured", nil)
	}
	id, human, err := b.callerOrLocal(ctx, m, token)
	if err != nil {
		return audit.Event{}, err
	}
	ev := audit.Event{Type: audit.AdminPrefix + action, RequestID: m.RequestID, Source: m.Source,
		Principal: b.actor(&id), Human: b.actor(human), Outcome: audit.OutcomeSuccess}
	if !b.isAdmin(m, id, human) {
		ev.Outcome, ev.Reason = audit.OutcomeDenied, "caller lacks stint/admin"
		_ = b.record(ctx, ev)
		return ev, core.Forbidden(denied, nil)
	}
	return ev, nil
}

// checkReport bounds a report and refuses fields that could hold a secret.
// Its messages name the finding by index, never by content.
func checkReport(source string, fs []store.Finding) error {
	if source == "" || len(source) > maxSourceLen || !printable(source) {
		return core.Invalid("source must be 1 to %d printable characters", maxSourceLen)
	}
	if len(fs) > MaxInventoryFindings {
		return core.Invalid("a report holds at most %d findings, not %d", MaxInventoryFindings, len(fs))
	}
	for i, f := range fs {
		switch {
		case !isHex(f.Fingerprint) || len(f.Fingerprint) < 16 || len(f.Fingerprint) > 128:
			return core.Invalid("finding %d: fingerprint must be 16 to 128 hex digits", i)
		case f.File == "" || len(f.File) > maxPathLen || !printable(f.File):
			return core.Invalid("finding %d: file must be 1 to %d printable characters", i, maxPathLen)
		case f.Rule == "" || len(f.Rule) > maxRuleLen || !printable(f.Rule):
			return core.Invalid("finding %d: rule must be 1 to %d printable characters", i, maxRuleLen)
		case f.Line < 0:
			return core.Invalid("finding %d: line must not be negative", i)
		case len(f.Commit) > maxCommitLen || (f.Commit != "" && !isHex(f.Commit)):
			return core.Invalid("finding %d: commit must be a hex object name", i)
		case utf8.RuneCountInString(f.Redacted) > maxRedactedRunes || !printable(f.Redacted):
			return core.Invalid("finding %d: redacted must be at most %d characters (the scanner's redacted form)", i, maxRedactedRunes)
		}
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && s != "" && s == strings.ToLower(s)
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}
