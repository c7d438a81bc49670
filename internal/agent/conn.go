package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stint-dev/stint/client"
)

// Spec names one credential to fetch: `TARGET/ROLE[:NAME]`.
type Spec struct {
	Target string
	Role   string
	// Name is how the credential is referred to in variable names and
	// overrides (default: the target).
	Name string
	// TTL asks for a lifetime ("" : the role's default).
	TTL   string
	Scope string
}

// ParseSpec parses "TARGET/ROLE[:NAME]".
func ParseSpec(s string) (Spec, error) {
	ref, name, hasName := strings.Cut(s, ":")
	t, r, ok := strings.Cut(ref, "/")
	if !ok || t == "" || r == "" || strings.Contains(r, "/") {
		return Spec{}, fmt.Errorf("agent: credential %q: want TARGET/ROLE[:NAME]", s)
	}
	if hasName && name == "" {
		return Spec{}, fmt.Errorf("agent: credential %q: empty NAME after ':'", s)
	}
	if !hasName {
		name = t
	}
	return Spec{Target: t, Role: r, Name: name}, nil
}

// String renders the spec as TARGET/ROLE:NAME.
func (s Spec) String() string { return s.Target + "/" + s.Role + ":" + s.Name }

// Conn is the agent's link to a stint server: the client and the
// identity the requests are made with.
type Conn struct {
	Client   *client.Client
	Identity Source
	// OnBehalfOf, when set, supplies the human's token.
	OnBehalfOf Source
}

func (c *Conn) token(ctx context.Context) (string, error) {
	if c.Identity == nil {
		return "", errors.New("agent: no identity source")
	}
	return c.Identity.Token(ctx)
}

// Fetch asks for one credential.
func (c *Conn) Fetch(ctx context.Context, s Spec) (Held, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return Held{}, err
	}
	req := client.CredentialRequest{Target: s.Target, Role: s.Role, TTL: s.TTL, Scope: s.Scope}
	if c.OnBehalfOf != nil {
		if req.OnBehalfOf, err = c.OnBehalfOf.Token(ctx); err != nil {
			return Held{}, err
		}
	}
	cred, err := c.Client.Credentials(ctx, tok, req)
	if err != nil {
		return Held{}, fmt.Errorf("%s/%s: %w", s.Target, s.Role, err)
	}
	return Held{Name: s.Name, Target: s.Target, Role: s.Role, Lease: cred}, nil
}

// Renew extends a lease; ttl "" asks for the role's default.
func (c *Conn) Renew(ctx context.Context, leaseID, ttl string) (client.Lease, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return client.Lease{}, err
	}
	return c.Client.Renew(ctx, tok, leaseID, ttl)
}

// Revoke revokes a lease (idempotent on the server).
func (c *Conn) Revoke(ctx context.Context, leaseID string) error {
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	_, err = c.Client.Revoke(ctx, tok, leaseID, false)
	return err
}

// Lease reads a lease's state.
func (c *Conn) Lease(ctx context.Context, leaseID string) (client.Lease, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return client.Lease{}, err
	}
	return c.Client.Lease(ctx, tok, leaseID)
}

// Retryable reports whether err means "try again later" (the server was
// unreachable or failed) rather than "the server said no".
func Retryable(err error) bool {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return err != nil && !errors.Is(err, context.Canceled)
}
