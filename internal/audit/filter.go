package audit

import (
	"slices"
	"strconv"
	"strings"
)

// Filter selects events by type and outcome. The zero Filter matches every
// event.
type Filter struct {
	// Types are type prefixes: "admin." matches "admin.role.create", and a
	// full type matches itself. Empty means any type.
	Types []string
	// Outcomes are exact outcomes. Empty means any outcome.
	Outcomes []string
	// Exclude inverts the match: the filter then selects the events that do
	// not match Types and Outcomes.
	Exclude bool
}

// Match reports whether the filter selects e.
func (f *Filter) Match(e *Event) bool {
	if f == nil {
		return true
	}
	m := (len(f.Types) == 0 || slices.ContainsFunc(f.Types, func(p string) bool { return strings.HasPrefix(e.Type, p) })) &&
		(len(f.Outcomes) == 0 || slices.Contains(f.Outcomes, e.Outcome))
	return m != f.Exclude
}

// Select returns the events of evs the filter selects (evs itself when all are).
func (f *Filter) Select(evs []Event) []Event {
	if f == nil {
		return evs
	}
	all := true
	for i := range evs {
		if !f.Match(&evs[i]) {
			all = false
			break
		}
	}
	if all {
		return evs
	}
	var out []Event
	for i := range evs {
		if f.Match(&evs[i]) {
			out = append(out, evs[i])
		}
	}
	return out
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }
