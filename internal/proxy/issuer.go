package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// Issuer is the issuer.Issuer of an http target. Such a target hands out
// no credential — the proxy uses it on the caller's behalf — so Issue
// refuses and points at /proxy; it exists so http targets and their roles
// sit in the same target/role model as every other type.
type Issuer struct {
	name  string
	roles []string
}

// NewIssuer returns the issuer of the http target name with these roles.
func NewIssuer(name string, roles []string) *Issuer {
	rs := append([]string(nil), roles...)
	sort.Strings(rs)
	return &Issuer{name: name, roles: rs}
}

// Roles lists the target's roles.
func (i *Issuer) Roles() []string { return i.roles }

// Issue refuses: the upstream credential never leaves stint.
func (i *Issuer) Issue(context.Context, issuer.Request) (issuer.Result, error) {
	return issuer.Result{}, core.Invalid("%s is an http target: call it through /proxy/%s/… instead of asking for its credential", i.name, i.name)
}

// Revoke has nothing to remove.
func (i *Issuer) Revoke(context.Context, issuer.RevokeRequest) error { return nil }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ issuer.Issuer = (*Issuer)(nil)
