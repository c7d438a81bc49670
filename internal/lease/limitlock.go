package lease

import (
	"hash/maphash"
	"sync"

	"github.com/stint-dev/stint/internal/core"
)

// limitStripes is how many locks each kind of limit spreads over.
const limitStripes = 64

// limitLocks make an active-lease limit's count-then-create exact within
// one replica. The create waits for its durable write while it holds the
// locks, so one lock for the whole server would put every issue in a
// single file; a lock per principal (and per role) serializes only the
// issues that share a limit. Principals (or roles) whose names hash alike
// share a stripe, which costs them some concurrency, never correctness.
type limitLocks struct {
	seed      maphash.Seed
	principal [limitStripes]sync.Mutex
	role      [limitStripes]sync.Mutex
}

func newLimitLocks() *limitLocks { return &limitLocks{seed: maphash.MakeSeed()} }

// lock takes the principal's stripe (when byPrincipal) and then the role's
// (when byRole) and returns the function that releases them. Every caller
// takes a principal stripe before a role stripe and at most one of each,
// so two callers can never wait on each other in a cycle.
func (ll *limitLocks) lock(l core.Lease, byPrincipal, byRole bool) (unlock func()) {
	var held []*sync.Mutex
	if byPrincipal {
		mu := &ll.principal[ll.stripe(l.Provider, l.Subject)]
		mu.Lock()
		held = append(held, mu)
	}
	if byRole {
		mu := &ll.role[ll.stripe(l.Target, l.Role)]
		mu.Lock()
		held = append(held, mu)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}

// stripe hashes a two-part name; the zero byte keeps ("ab","c") and
// ("a","bc") apart.
func (ll *limitLocks) stripe(a, b string) int {
	var h maphash.Hash
	h.SetSeed(ll.seed)
	h.WriteString(a)
	h.WriteByte(0)
	h.WriteString(b)
	return int(h.Sum64() % limitStripes)
}
