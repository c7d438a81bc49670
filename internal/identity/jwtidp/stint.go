package jwtidp

import (
	"errors"
	"fmt"

	"github.com/stint-dev/stint/internal/core"
)

// maxActDepth bounds the act chain; real delegation is one or two deep.
const maxActDepth = 8

// stintProfile restores the principal stint put into its own session
// token (claim layout in the package doc).
func stintProfile(p *core.Principal, c claims) error {
	if err := restore(p, c); err != nil {
		return err
	}
	actor, err := restoreActor(c, 1)
	if err != nil {
		return err
	}
	p.Actor = actor
	return nil
}

func restore(p *core.Principal, c claims) error {
	p.Provider, p.Kind = c.str("stint_provider"), c.str("stint_kind")
	if p.Provider == "" || p.Kind == "" {
		return errors.New("stint: stint_provider and stint_kind are required")
	}
	raw, present := c["stint_attrs"]
	if !present {
		return nil
	}
	attrs, ok := raw.(map[string]any)
	if !ok {
		return errors.New("stint: stint_attrs is not an object")
	}
	for k, v := range attrs {
		p.Attributes[k] = normalize(v)
	}
	return nil
}

func restoreActor(c claims, depth int) (*core.Principal, error) {
	raw, present := c["act"]
	if !present {
		return nil, nil
	}
	if depth > maxActDepth {
		return nil, fmt.Errorf("stint: act nested deeper than %d", maxActDepth)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("stint: act is not an object")
	}
	ac := claims(m)
	a := &core.Principal{Subject: ac.str("sub"), Issuer: ac.str("iss"), Attributes: map[string]any{}}
	if a.Subject == "" {
		return nil, errors.New("stint: act has no sub")
	}
	if err := restore(a, ac); err != nil {
		return nil, err
	}
	next, err := restoreActor(ac, depth+1)
	if err != nil {
		return nil, err
	}
	a.Actor = next
	return a, nil
}

// normalize turns decoded JSON into the attribute shapes core.Principal
// documents: a list of strings becomes []string; numbers stay float64.
func normalize(v any) any {
	switch x := v.(type) {
	case []any:
		ss := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return x
			}
			ss = append(ss, s)
		}
		return ss
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	}
	return v
}
