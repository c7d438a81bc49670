package jwtidp

import "github.com/stint-dev/stint/internal/core"

// oidcProfile reads a generic OIDC ID or access token: the usual profile
// claims, and groups as a list even when the issuer sends a single string.
// Anything else comes through Config.ClaimAttributes.
func oidcProfile(p *core.Principal, c claims) error {
	copyAttrs(p.Attributes, c, "email", "email_verified", "name", "preferred_username")
	switch g := c["groups"].(type) {
	case string:
		p.Attributes["groups"] = []string{g}
	default:
		if v, ok := attrValue(g); ok {
			if list, ok := v.([]string); ok {
				p.Attributes["groups"] = list
			}
		}
	}
	return nil
}
