// Package core holds the types every other stint package shares: the
// verified Principal, the Grant a policy allows, the Lease that records an
// issued credential, and the Error type that keeps what a caller may see
// apart from the internal cause. It imports nothing internal.
package core
