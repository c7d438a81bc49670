package broker

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/core"
)

// AuditQuery selects events of the local record.
type AuditQuery struct {
	Filter  audit.Filter
	Since   time.Time
	Subject string // principal or human subject
	Limit   int    // newest events kept when more match; default 1000
}

// errStop ends a query early.
var errStop = errors.New("stop")

// QueryAudit returns events of the local audit record to an admin.
func (b *Broker) QueryAudit(ctx context.Context, m Meta, token string, q AuditQuery) ([]audit.Event, error) {
	id, human, err := b.callerOrLocal(ctx, m, token)
	if err != nil {
		return nil, err
	}
	ev := audit.Event{Type: audit.AdminPrefix + "audit_query", RequestID: m.RequestID, Source: m.Source,
		Principal: b.actor(&id), Human: b.actor(human), Outcome: audit.OutcomeSuccess}
	if !b.isAdmin(m, id, human) {
		ev.Outcome, ev.Reason = audit.OutcomeDenied, "caller lacks stint/admin"
		_ = b.record(ctx, ev)
		return nil, core.Forbidden("reading the audit record needs stint/admin", nil)
	}
	if b.o.AuditFile == "" {
		return nil, core.E(core.KindNotFound, "", "no local audit file is configured", nil)
	}
	if err := b.record(ctx, ev); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > 10000 {
		q.Limit = 1000
	}
	f, err := os.Open(b.o.AuditFile)
	if err != nil {
		return nil, core.E(core.KindUnavailable, "", "audit record unavailable", err)
	}
	defer f.Close()
	var out []audit.Event
	err = audit.Query(f, q.Filter, q.Since, func(e audit.Event) error {
		if ctx.Err() != nil {
			return errStop
		}
		if q.Subject != "" && (e.Principal == nil || e.Principal.Subject != q.Subject) && (e.Human == nil || e.Human.Subject != q.Subject) {
			return nil
		}
		out = append(out, e)
		if len(out) > q.Limit {
			out = out[1:]
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, core.E(core.KindInternal, "", "could not read the audit record", err)
	}
	return out, nil
}
