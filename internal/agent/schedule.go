package agent

import (
	"math/rand/v2"
	"time"
)

// Fractions of a credential's life at which it is maintained.
const (
	// RenewFraction: renewable leases are renewed at two thirds of their
	// TTL, leaving a third for retries when the server is briefly away.
	RenewFraction = 2.0 / 3.0
	// RefetchFraction: non-renewable credentials are fetched anew at 85 %.
	RefetchFraction = 0.85
	// jitterSpread is the share of the TTL a renewal may come early, so
	// many agents started together do not renew in lockstep.
	jitterSpread = 0.05
)

// Rand returns a number in [0,1); tests inject a fixed one.
type Rand func() float64

func (r Rand) get() float64 {
	if r == nil {
		return rand.Float64()
	}
	return r()
}

// At returns when to act on a credential obtained at `from` and expiring
// at `until`: at fraction of its life, up to jitterSpread earlier.
func At(from, until time.Time, fraction float64, r Rand) time.Time {
	life := until.Sub(from)
	if life <= 0 {
		return from
	}
	f := fraction - jitterSpread*r.get()
	return from.Add(time.Duration(float64(life) * f))
}

// Backoff is capped exponential backoff for retries.
type Backoff struct {
	Initial, Max time.Duration
	n            int
}

// Next returns the next delay and advances.
func (b *Backoff) Next() time.Duration {
	init, maxd := b.Initial, b.Max
	if init <= 0 {
		init = time.Second
	}
	if maxd <= 0 {
		maxd = 30 * time.Second
	}
	d := init << min(b.n, 20)
	if d > maxd || d <= 0 {
		d = maxd
	}
	b.n++
	return d
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }
